// SPDX-License-Identifier: MIT
// Stream and Event owners; the per-device compute streams.
#include "runtime/cuda/stream.h"

#include <array>
#include <mutex>

#include "runtime/cuda/cuda_check.h"

namespace dpt::cuda {

void StreamTraits::close(cudaStream_t stream) noexcept {
  DPT_CUDA_CHECK_LOG(cudaStreamDestroy(stream));
}

void EventTraits::close(cudaEvent_t event) noexcept { DPT_CUDA_CHECK_LOG(cudaEventDestroy(event)); }

Stream Stream::create(int priority) {
  cudaStream_t stream = nullptr;
  DPT_CUDA_CHECK(cudaStreamCreateWithPriority(&stream, cudaStreamNonBlocking, priority));
  Stream s;
  s.stream_.reset(stream);
  return s;
}

void Stream::synchronize() const { DPT_CUDA_CHECK(cudaStreamSynchronize(get())); }

Event Event::create_with_flags(unsigned flags) {
  cudaEvent_t event = nullptr;
  DPT_CUDA_CHECK(cudaEventCreateWithFlags(&event, flags));
  Event e;
  e.event_.reset(event);
  return e;
}

Event Event::create() { return create_with_flags(cudaEventDisableTiming); }

Event Event::create_timed() { return create_with_flags(cudaEventDefault); }

float Event::elapsed_ms_since(const Event& start) const {
  float ms = 0.0f;
  DPT_CUDA_CHECK(cudaEventElapsedTime(&ms, start.get(), get()));
  return ms;
}

void Event::record(cudaStream_t stream) { DPT_CUDA_CHECK(cudaEventRecord(get(), stream)); }

void Event::make_wait(cudaStream_t stream) const {
  DPT_CUDA_CHECK(cudaStreamWaitEvent(stream, get(), 0));
}

bool Event::query() const {
  const cudaError_t status = cudaEventQuery(get());
  if (status == cudaErrorNotReady) {
    // The runtime also stores "not ready" as this thread's last error; a later launch check
    // (cudaGetLastError) would report it as a failure of an unrelated kernel.
    (void)cudaGetLastError();
    return false;
  }
  DPT_CUDA_CHECK(status);
  return true;
}

void Event::synchronize() const { DPT_CUDA_CHECK(cudaEventSynchronize(get())); }

cudaStream_t compute_stream(int device) {
  constexpr int kMaxDevices = 64;
  static std::array<cudaStream_t, kMaxDevices> streams{};
  static std::mutex mutex;
  DPT_CHECK(device >= 0 && device < kMaxDevices, "compute stream: device ", device,
            " outside [0, ", kMaxDevices, ")");
  std::lock_guard lock(mutex);
  cudaStream_t& stream = streams[static_cast<std::size_t>(device)];
  if (stream == nullptr) {
    int previous = 0;
    DPT_CUDA_CHECK(cudaGetDevice(&previous));
    DPT_CUDA_CHECK(cudaSetDevice(device));
    DPT_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    DPT_CUDA_CHECK(cudaSetDevice(previous));
  }
  return stream;
}

}  // namespace dpt::cuda
