// SPDX-License-Identifier: MIT
// BatchUploader: moves each host batch from the loader to the training device. On the CPU it hands
// the tensor back unchanged. On a GPU it copies through pinned staging buffers on a copy stream of
// its own, and the compute stream waits for that copy (an event) before the batch's first kernel:
// the copy of batch k+1 runs while the GPU still computes batch k.
#pragma once

#include <memory>

#include "runtime/device.h"
#include "runtime/tensor.h"

namespace dpt {

class BatchUploader {
 public:
  explicit BatchUploader(Device device);
  BatchUploader(const BatchUploader&) = delete;
  BatchUploader& operator=(const BatchUploader&) = delete;
  ~BatchUploader();

  // A tensor on the device with host's contents; host may be reused when this returns.
  Tensor upload(const Tensor& host);

  // The device-specific part (runtime/cuda/batch_uploader_cuda.cpp).
  class Impl {
   public:
    virtual ~Impl() = default;
    virtual Tensor upload(const Tensor& host) = 0;
  };

 private:
  Device device_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dpt
