// SPDX-License-Identifier: MIT
// The GPU batch uploader: two pinned staging buffers used in turn and a copy stream. The device
// tensor is allocated in the copy stream's order, so the copy waits for nothing the compute stream
// has queued; each upload's fence holds an event recorded after its copy, and the compute stream
// waits on it only where the batch is first used (UploadFence::wait_on_device), so the copy runs
// while the kernels queued before that use do. The host waits for the copy that last read a
// staging buffer before refilling it. The tensor is freed, later, on the compute stream, which by
// then is ordered after the copy (the fence's last owner issues the wait if nobody did).
#include "runtime/cuda/batch_uploader_cuda.h"

#include <array>
#include <cstring>

#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/pinned_buffer.h"
#include "runtime/cuda/stream.h"

namespace dpt::cuda {
namespace {

// The completion of one copy: its own event (a slot's event is re-recorded by a later upload).
class CopyFence final : public UploadFence::Impl {
 public:
  CopyFence(int device, cudaStream_t copy_stream) : device_(device), copied_(Event::create()) {
    copied_.record(copy_stream);
  }
  void make_compute_wait() override { copied_.make_wait(compute_stream(device_)); }

 private:
  int device_;
  Event copied_;
};

class CudaBatchUploader final : public BatchUploader::Impl {
 public:
  explicit CudaBatchUploader(int device) : device_(device) {
    set_current();
    copy_stream_ = Stream::create();
    for (auto& slot : slots_) slot.copied = Event::create();
  }

  // Copies still in flight read the staging buffers: they must end before cudaFreeHost.
  ~CudaBatchUploader() override { DPT_CUDA_CHECK_LOG(cudaStreamSynchronize(copy_stream_.get())); }

  Upload upload(const Tensor& host) override {
    set_current();
    Tensor device_tensor = Tensor::empty_on_stream(host.shape(), host.dtype(),
                                                   Device::cuda(device_), copy_stream_.get());
    // Nothing copied, but the allocation is in the copy stream's order: the fence covers it.
    if (host.size_bytes() == 0) {
      return Upload{device_tensor,
                    UploadFence(std::make_shared<CopyFence>(device_, copy_stream_.get()))};
    }
    Slot& slot = slots_[next_slot_];
    next_slot_ = (next_slot_ + 1) % slots_.size();
    if (slot.used) slot.copied.synchronize();
    if (slot.buffer.size_bytes() < host.size_bytes()) slot.buffer = PinnedBuffer(host.size_bytes());
    std::memcpy(slot.buffer.data(), host.raw_data(), host.size_bytes());

    DPT_CUDA_CHECK(cudaMemcpyAsync(device_tensor.raw_data(), slot.buffer.data(), host.size_bytes(),
                                   cudaMemcpyHostToDevice, copy_stream_.get()));
    slot.copied.record(copy_stream_.get());
    slot.used = true;
    // No wait on the compute stream here: the kernels queued before this batch's first use
    // (the current step's) must not wait for its copy.
    return Upload{device_tensor,
                  UploadFence(std::make_shared<CopyFence>(device_, copy_stream_.get()))};
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
