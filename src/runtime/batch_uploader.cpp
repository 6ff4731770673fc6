// SPDX-License-Identifier: MIT
#include "runtime/batch_uploader.h"

#include <exception>

#include "runtime/check.h"
#include "runtime/gpu_backend.h"
#include "runtime/logging.h"

namespace dpt {

UploadFence::UploadFence(std::shared_ptr<Impl> impl) {
  copies_.push_back(std::make_shared<Copy>(std::move(impl)));
}

UploadFence::Copy::~Copy() {
  if (waited) return;
  try {
    impl->make_compute_wait();
  } catch (const std::exception& e) {
    log(LogLevel::kWarning, "an unused uploaded batch: ordering its free after its copy failed: ",
        e.what());
  }
}

void UploadFence::wait_on_device() {
  for (const auto& copy : copies_) {
    if (copy->waited) continue;
    copy->impl->make_compute_wait();
    copy->waited = true;
  }
}

bool UploadFence::pending() const {
  for (const auto& copy : copies_) {
    if (!copy->waited) return true;
  }
  return false;
}

void UploadFence::add(const UploadFence& other) {
  copies_.insert(copies_.end(), other.copies_.begin(), other.copies_.end());
}

BatchUploader::BatchUploader(Device device) {
  if (device.type == DeviceType::kCuda) impl_ = gpu_backend::make_batch_uploader(device.index);
}

BatchUploader::BatchUploader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

BatchUploader::~BatchUploader() = default;

Upload BatchUploader::upload(const Tensor& host) {
  DPT_CHECK(host.device().type == DeviceType::kCpu, "batch uploader: the batch is already on ",
            to_string(host.device()));
  if (!impl_) return Upload{host, UploadFence()};
  return impl_->upload(host);
}

}  // namespace dpt
