// SPDX-License-Identifier: MIT
#include "runtime/cuda/host_snapshot_cuda.h"

#include <cstdint>

#include "runtime/check.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/pinned_buffer.h"
#include "runtime/cuda/stream.h"

namespace dpt::cuda {
namespace {

// Note [Snapshots on a copy stream]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// A checkpoint's snapshot (parameters and optimizer state: three times the model under AdamW)
// used to be a cudaMemcpy per tensor into pageable memory: the host waited for every kernel
// queued before it, then for copies that the driver stages through a bounce buffer. Now:
// - one event recorded on the compute stream marks the end of the work that produced the values
//   (the optimizer step); the snapshotter's copy stream waits for it, then copies every tensor
//   into one pinned block at full PCIe/NVLink-C2C speed, and records `copied`;
// - take() returns at once: the host goes on queueing the next step's forward and backward, which
//   only read the parameters, and the GPU runs them alongside the copies;
// - the trainer calls order_compute_after() before the next optimizer step (the first kernel that
//   overwrites a source): the compute stream then waits for `copied`, on the device;
// - the checkpoint writer's thread calls wait_on_host() before it reads the block.
// Sources the caller does not keep (a sharded optimizer's gathered slots) stay alive in the fence
// until the compute stream is ordered after the copies: freed earlier, their memory could be
// handed to a kernel (stream-ordered allocation on the compute stream) while the copy still
// reads it. The block is reused by the next snapshot once no copy of the previous one is alive;
// the copy stream's order keeps the two snapshots' copies apart.
class SnapshotCopies final : public SnapshotFence::Impl {
 public:
  SnapshotCopies(int device, cudaStream_t copy_stream, std::vector<Tensor> sources,
                 std::shared_ptr<PinnedBuffer> block)
      : device_(device),
        copied_(Event::create()),
        sources_(std::move(sources)),
        block_(std::move(block)) {
    copied_.record(copy_stream);
  }

  void wait_on_host() override {
    DPT_CUDA_CHECK(cudaSetDevice(device_));  // the writer's thread may have another current
    copied_.synchronize();
  }

  void make_compute_wait() override {
    DPT_CUDA_CHECK(cudaSetDevice(device_));
    copied_.make_wait(compute_stream(device_));
    sources_.clear();  // freed on the compute stream, now after the copies
  }

 private:
  int device_;
  Event copied_;
  std::vector<Tensor> sources_;
  std::shared_ptr<PinnedBuffer> block_;  // never freed under a copy in flight
};

class CudaHostSnapshotter final : public HostSnapshotter::Impl {
 public:
  explicit CudaHostSnapshotter(int device) : device_(device) {
    set_current();
    copy_stream_ = Stream::create();
    sources_ready_ = Event::create();
  }

  // Copies in flight write the pinned block: they end before it can be freed.
  ~CudaHostSnapshotter() override { DPT_CUDA_CHECK_LOG(cudaStreamSynchronize(copy_stream_.get())); }

  HostSnapshot take(const std::vector<Tensor>& sources) override {
    set_current();
    constexpr std::size_t kAlign = 64;  // each copy starts on a cache line
    std::size_t total = 0;
    for (const Tensor& source : sources) {
      DPT_CHECK(source.device() == Device::cuda(device_), "snapshot of a tensor on ",
                to_string(source.device()), " by the snapshotter of ",
                to_string(Device::cuda(device_)));
      total += (source.size_bytes() + kAlign - 1) / kAlign * kAlign;
    }
    // Reused only when no copy of the previous snapshot is alive (the fence's reference and the
    // tensors' storages count).
    if (!block_ || block_.use_count() > 1 || block_->size_bytes() < total) {
      block_ = std::make_shared<PinnedBuffer>(total);
    }

    sources_ready_.record(compute_stream(device_));
    sources_ready_.make_wait(copy_stream_.get());
    HostSnapshot snapshot;
    auto* base = static_cast<std::uint8_t*>(block_->data());
    std::size_t offset = 0;
    for (const Tensor& source : sources) {
      if (source.size_bytes() > 0) {
        DPT_CUDA_CHECK(cudaMemcpyAsync(base + offset, source.raw_data(), source.size_bytes(),
                                       cudaMemcpyDeviceToHost, copy_stream_.get()));
      }
      snapshot.copies.push_back(Tensor::over_memory(base + offset, source.shape(), source.dtype(),
                                                    Device::cpu(), block_));
      offset += (source.size_bytes() + kAlign - 1) / kAlign * kAlign;
    }
    snapshot.fence = SnapshotFence(
        std::make_shared<SnapshotCopies>(device_, copy_stream_.get(), sources, block_));
    return snapshot;
  }

 private:
  void set_current() const { DPT_CUDA_CHECK(cudaSetDevice(device_)); }

  int device_;
  Stream copy_stream_;
  Event sources_ready_;
  std::shared_ptr<PinnedBuffer> block_;
};

}  // namespace

std::unique_ptr<HostSnapshotter::Impl> make_host_snapshotter(int device) {
  return std::make_unique<CudaHostSnapshotter>(device);
}

}  // namespace dpt::cuda
