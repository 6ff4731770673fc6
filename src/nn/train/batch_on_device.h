// SPDX-License-Identifier: MIT
// A loader batch moved to the training device: what training and evaluation both feed the model.
#pragma once

#include "runtime/batch_uploader.h"
#include "runtime/io/loader.h"

namespace dpt::nn {

// `batch` with its images and labels uploaded (the same tensors on the CPU) and batch.ready
// covering both copies. No wait is issued here: the user of the batch calls
// batch.ready.wait_on_device() before its first kernel (Note [Upload one step ahead]).
inline io::Batch on_device(BatchUploader& uploader, io::Batch batch) {
  Upload inputs = uploader.upload(batch.inputs);
  Upload labels = uploader.upload(batch.labels);
  batch.inputs = std::move(inputs.tensor);
  batch.labels = std::move(labels.tensor);
  batch.ready = std::move(inputs.ready);
  batch.ready.add(labels.ready);
  return batch;
}

}  // namespace dpt::nn
