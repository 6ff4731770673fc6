// SPDX-License-Identifier: MIT
#include "runtime/batch_uploader.h"

#include "runtime/check.h"
#include "runtime/gpu_backend.h"

namespace dpt {

BatchUploader::BatchUploader(Device device) : device_(device) {
  if (device.type == DeviceType::kCuda) impl_ = gpu_backend::make_batch_uploader(device.index);
}

BatchUploader::~BatchUploader() = default;

Tensor BatchUploader::upload(const Tensor& host) {
  DPT_CHECK(host.device().type == DeviceType::kCpu, "batch uploader: the batch is already on ",
            to_string(host.device()));
  if (!impl_) return host;
  return impl_->upload(host);
}

}  // namespace dpt
