// SPDX-License-Identifier: MIT
// A loader batch moved to the training device: what training and evaluation both feed the model.
#pragma once

#include "runtime/batch_uploader.h"
#include "runtime/io/loader.h"

namespace dpt::nn {

// `batch` with its images and labels uploaded (the same tensors on the CPU).
inline io::Batch on_device(BatchUploader& uploader, io::Batch batch) {
  batch.images = uploader.upload(batch.images);
  batch.labels = uploader.upload(batch.labels);
  return batch;
}

}  // namespace dpt::nn
