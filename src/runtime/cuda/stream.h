// SPDX-License-Identifier: MIT
// RAII owners of CUDA streams and events, and the per-device compute stream every kernel, copy and
// stream-ordered allocation of dptrain runs on (one host thread drives each GPU).
#pragma once

#include <cuda_runtime_api.h>

#include "runtime/unique_handle.h"

namespace dpt::cuda {

struct StreamTraits {
  using handle_type = cudaStream_t;
  static cudaStream_t null() noexcept { return nullptr; }
  static void close(cudaStream_t stream) noexcept;
};
struct EventTraits {
  using handle_type = cudaEvent_t;
  static cudaEvent_t null() noexcept { return nullptr; }
  static void close(cudaEvent_t event) noexcept;
};

class Stream {
 public:
  Stream() = default;
  // A non-blocking stream (no implicit ordering with the legacy default stream) on the current
  // device; a lower `priority` number runs first (NCCL's stream gets the highest priority).
  static Stream create(int priority = 0);

  cudaStream_t get() const noexcept { return stream_.get(); }
  void synchronize() const;

 private:
  UniqueHandle<StreamTraits> stream_;
};

class Event {
 public:
  Event() = default;
  // Timing off: recording and waiting stay cheap (cudaEventDisableTiming).
  static Event create();
  // Timing on, for elapsed_ms_since() (DeviceTimer, the NCCL collectives' durations).
  static Event create_timed();

  cudaEvent_t get() const noexcept { return event_.get(); }
  void record(cudaStream_t stream);
  // Work queued on `stream` after this call waits for the work before the last record().
  void make_wait(cudaStream_t stream) const;
  // True when the recorded work has completed; throws on a failed kernel.
  bool query() const;
  void synchronize() const;
  // Milliseconds between the completion of `start` and of this event; both timed and complete.
  float elapsed_ms_since(const Event& start) const;

 private:
  static Event create_with_flags(unsigned flags);

  UniqueHandle<EventTraits> event_;
};

// The compute stream of `device`, created on first use and kept for the life of the process
// (destroying it from a static destructor would race the CUDA runtime's own teardown).
cudaStream_t compute_stream(int device);

}  // namespace dpt::cuda
