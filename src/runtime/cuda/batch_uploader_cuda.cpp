// SPDX-License-Identifier: MIT
// The GPU batch uploader: two pinned staging buffers used in turn, a copy stream, and events that
// order (1) the allocation of the device tensor before the copy, (2) the copy before the compute
// stream's first use, and (3) the previous copy out of a staging buffer before it is refilled.
#include "runtime/cuda/batch_uploader_cuda.h"

#include <array>
#include <cstring>

#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/pinned_buffer.h"
#include "runtime/cuda/stream.h"

namespace dpt::cuda {
namespace {

class CudaBatchUploader final : public BatchUploader::Impl {
 public:
  explicit CudaBatchUploader(int device) : device_(device) {
    set_current();
    copy_stream_ = Stream::create();
    allocated_ = Event::create();
    for (auto& slot : slots_) slot.copied = Event::create();
  }

  Tensor upload(const Tensor& host) override {
    set_current();
    Slot& slot = slots_[next_slot_];
    next_slot_ = (next_slot_ + 1) % slots_.size();
    // The copy that last read this staging buffer must be done before it is overwritten.
    if (slot.used) slot.copied.synchronize();
    if (slot.buffer.size_bytes() < host.size_bytes()) slot.buffer = PinnedBuffer(host.size_bytes());
    if (host.size_bytes() > 0) std::memcpy(slot.buffer.data(), host.raw_data(), host.size_bytes());

    Tensor device_tensor = Tensor::empty(host.shape(), host.dtype(), Device::cuda(device_));
    const cudaStream_t compute = compute_stream(device_);
    allocated_.record(compute);  // the stream-ordered allocation happened on the compute stream
    allocated_.make_wait(copy_stream_.get());
    DPT_CUDA_CHECK(cudaMemcpyAsync(device_tensor.raw_data(), slot.buffer.data(), host.size_bytes(),
                                   cudaMemcpyHostToDevice, copy_stream_.get()));
    slot.copied.record(copy_stream_.get());
    slot.copied.make_wait(compute);
    slot.used = true;
    return device_tensor;
  }

 private:
  struct Slot {
    PinnedBuffer buffer;
    Event copied;
    bool used = false;
  };

  void set_current() const { DPT_CUDA_CHECK(cudaSetDevice(device_)); }

  int device_;
  Stream copy_stream_;
  Event allocated_;
  std::array<Slot, 2> slots_;
  std::size_t next_slot_ = 0;
};

}  // namespace

std::unique_ptr<BatchUploader::Impl> make_batch_uploader(int device) {
  return std::make_unique<CudaBatchUploader>(device);
}

}  // namespace dpt::cuda
