// SPDX-License-Identifier: MIT
// RAII owners of CUDA streams and events, and the per-device compute stream every kernel, copy and
// stream-ordered allocation of dptrain runs on (one host thread drives each GPU).
#pragma once

#include <cuda_runtime_api.h>

#include <utility>

namespace dpt::cuda {

class Stream {
 public:
  Stream() = default;
  // A non-blocking stream (no implicit ordering with the legacy default stream) on the current
  // device; a lower `priority` number runs first (NCCL's stream gets the highest priority).
  static Stream create(int priority = 0);
  Stream(Stream&& other) noexcept : stream_(std::exchange(other.stream_, nullptr)) {}
  Stream& operator=(Stream&& other) noexcept {
    if (this != &other) {
      reset();
      stream_ = std::exchange(other.stream_, nullptr);
    }
    return *this;
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream() { reset(); }

  cudaStream_t get() const noexcept { return stream_; }
  void synchronize() const;

 private:
  void reset() noexcept;
  cudaStream_t stream_ = nullptr;
};

class Event {
 public:
  Event() = default;
  // Timing off: recording and waiting stay cheap (cudaEventDisableTiming).
  static Event create();
  // Timing on, for elapsed_ms() (DeviceTimer, the NCCL collectives' durations).
  static Event create_timed();
  Event(Event&& other) noexcept : event_(std::exchange(other.event_, nullptr)) {}
  Event& operator=(Event&& other) noexcept {
    if (this != &other) {
      reset();
      event_ = std::exchange(other.event_, nullptr);
    }
    return *this;
  }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  ~Event() { reset(); }

  cudaEvent_t get() const noexcept { return event_; }
  void record(cudaStream_t stream);
  // Work queued on `stream` after this call waits for the work before the last record().
  void make_wait(cudaStream_t stream) const;
  // True when the recorded work has completed; throws on a failed kernel.
  bool query() const;
  void synchronize() const;
  // Milliseconds between the completion of `start` and of this event; both timed and complete.
  float elapsed_ms_since(const Event& start) const;

 private:
  void reset() noexcept;
  cudaEvent_t event_ = nullptr;
};

// The compute stream of `device`, created on first use and kept for the life of the process
// (destroying it from a static destructor would race the CUDA runtime's own teardown).
cudaStream_t compute_stream(int device);

}  // namespace dpt::cuda
