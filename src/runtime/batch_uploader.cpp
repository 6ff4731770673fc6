// SPDX-License-Identifier: MIT
#include "runtime/batch_uploader.h"

#include "runtime/check.h"
#include "runtime/config.h"

#if DPT_HAVE_CUDA
#include "runtime/cuda/batch_uploader_cuda.h"
#endif

namespace dpt {

BatchUploader::BatchUploader(Device device) : device_(device) {
  if (device.type == DeviceType::kCuda) {
#if DPT_HAVE_CUDA
    impl_ = cuda::make_batch_uploader(device.index);
#else
    DPT_CHECK(false, "batch uploader: ", to_string(device), " is not built into this binary");
#endif
  }
}

BatchUploader::~BatchUploader() = default;

Tensor BatchUploader::upload(const Tensor& host) {
  DPT_CHECK(host.device().type == DeviceType::kCpu, "batch uploader: the batch is already on ",
            to_string(host.device()));
  if (!impl_) return host;
  return impl_->upload(host);
}

}  // namespace dpt
