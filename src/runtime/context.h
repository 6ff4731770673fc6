// SPDX-License-Identifier: MIT
// Context: the device an op runs on, its thread count, and the backend's per-context state (oneDNN
// engine and primitive cache on the CPU). Created in main, passed down, destroyed before exit.
#pragma once

#include <memory>

#include "runtime/check.h"
#include "runtime/device.h"

namespace dpt {

// Backends derive from this to keep their handles and caches inside the Context.
class BackendState {
 public:
  virtual ~BackendState() = default;
};

class Context {
 public:
  // threads <= 0: use every core the process may run on.
  static Context create(Device device, int threads = 0);

  Context(Context&&) noexcept = default;
  Context& operator=(Context&&) noexcept = default;
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  ~Context() = default;

  const Device& device() const noexcept { return device_; }
  int threads() const noexcept { return threads_; }
  // Thread-invariant mode (off by default): every op then gives the same bits for any threads(),
  // at some cost in speed (docs/design.md, Determinism). Exact training turns it on.
  void set_thread_invariant(bool on) noexcept { thread_invariant_ = on; }
  bool thread_invariant() const noexcept { return thread_invariant_; }
  // TF32 (off by default): fp32 GEMMs and convolutions on a GPU may round their inputs to TF32
  // (10-bit significands) on tensor cores, several times faster and about 1e-3 from fp32. Only a
  // CUDA context has tensor cores: turning it on for a CPU context throws, since no CPU op could
  // honour it.
  void set_allow_tf32(bool on);
  bool allow_tf32() const noexcept { return allow_tf32_; }

  // The backend's state, created on first use by the backend itself.
  template <typename State>
  State& backend_state() const {
    if (!backend_state_) backend_state_ = std::make_unique<State>(*this);
    auto* state = dynamic_cast<State*>(backend_state_.get());
    DPT_ASSERT(state != nullptr);  // one backend per Context: a second State type is a bug
    return *state;
  }

 private:
  Context(Device device, int threads) : device_(device), threads_(threads) {}

  Device device_;
  int threads_ = 1;
  bool thread_invariant_ = false;
  bool allow_tf32_ = false;
  mutable std::unique_ptr<BackendState> backend_state_;
};

// Cores this process may run on (its affinity mask), at least 1.
int available_cores();

}  // namespace dpt
