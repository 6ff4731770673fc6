// SPDX-License-Identifier: MIT
// The GPU batch uploader: two pinned staging buffers used in turn and a copy stream. The device
// tensor is allocated in the copy stream's order, so the copy waits for nothing the compute stream
// has queued; the compute stream waits for the copy (an event) before the batch's first kernel,
// and the host waits for the copy that last read a staging buffer before refilling it. The tensor
// is freed, later, on the compute stream, which by then is ordered after the copy.
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
    for (auto& slot : slots_) slot.copied = Event::create();
  }

  // Copies still in flight read the staging buffers: they must end before cudaFreeHost.
  ~CudaBatchUploader() override { DPT_CUDA_CHECK_LOG(cudaStreamSynchronize(copy_stream_.get())); }

  Tensor upload(const Tensor& host) override {
    set_current();
    Tensor device_tensor = Tensor::empty_on_stream(host.shape(), host.dtype(),
                                                   Device::cuda(device_), copy_stream_.get());
    if (host.size_bytes() == 0) return device_tensor;
    Slot& slot = slots_[next_slot_];
    next_slot_ = (next_slot_ + 1) % slots_.size();
    if (slot.used) slot.copied.synchronize();
    if (slot.buffer.size_bytes() < host.size_bytes()) slot.buffer = PinnedBuffer(host.size_bytes());
    std::memcpy(slot.buffer.data(), host.raw_data(), host.size_bytes());

    DPT_CUDA_CHECK(cudaMemcpyAsync(device_tensor.raw_data(), slot.buffer.data(), host.size_bytes(),
                                   cudaMemcpyHostToDevice, copy_stream_.get()));
    slot.copied.record(copy_stream_.get());
    slot.copied.make_wait(compute_stream(device_));
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
  std::array<Slot, 2> slots_;
  std::size_t next_slot_ = 0;
};

}  // namespace

std::unique_ptr<BatchUploader::Impl> make_batch_uploader(int device) {
  return std::make_unique<CudaBatchUploader>(device);
}

}  // namespace dpt::cuda
