// SPDX-License-Identifier: MIT
// HostSnapshotter: host copies of tensors, taken so that training may go on at once (a
// checkpoint's snapshot, --async-checkpoint). On the CPU the copies are made before take()
// returns. On a GPU they are device-to-host copies into one pinned host block, queued on a copy
// stream of the snapshotter's own after the work already queued on the compute stream, and take()
// returns before they have run (Note [Snapshots on a copy stream]). A SnapshotFence then orders
// both sides: the host reads the copies only after wait_on_host(), and the compute stream
// overwrites the sources only after order_compute_after().
#pragma once

#include <memory>
#include <vector>

#include "runtime/device.h"
#include "runtime/tensor.h"

namespace dpt {

class SnapshotFence {
 public:
  // The device side of one snapshot's copies (runtime/cuda/host_snapshot_cuda.cpp, or a test's).
  class Impl {
   public:
    virtual ~Impl() = default;
    // Blocks until the copies have arrived in host memory. Any thread may call it.
    virtual void wait_on_host() = 0;
    // Makes work queued later on the compute stream wait for the copies (a stream wait: the
    // host does not block), then lets go of the sources it kept alive. The training thread calls
    // it.
    virtual void make_compute_wait() = 0;
  };

  SnapshotFence() = default;  // the copies are complete (the CPU)
  explicit SnapshotFence(std::shared_ptr<Impl> impl);

  // Before the host reads a copy. Copies of the fence may call it on other threads.
  void wait_on_host() const;
  // Before the first kernel that may overwrite a source (the next optimizer step, a parameter
  // gather, a restore). Once: later calls do nothing. If nobody calls it, the fence's last owner
  // does (never throwing), so no source is freed or reused before its copy has read it.
  void order_compute_after();
  // True while order_compute_after() is still to be called.
  bool pending() const;

 private:
  struct State {
    explicit State(std::shared_ptr<Impl> i) : impl(std::move(i)) {}
    State(const State&) = delete;
    State& operator=(const State&) = delete;
    ~State();
    std::shared_ptr<Impl> impl;
    bool ordered = false;
  };
  std::shared_ptr<State> state_;
};

// Host copies of some tensors, in the order of the sources, and what orders them.
struct HostSnapshot {
  std::vector<Tensor> copies;
  SnapshotFence fence;
};

class HostSnapshotter {
 public:
  // The device-specific part.
  class Impl {
   public:
    virtual ~Impl() = default;
    virtual HostSnapshot take(const std::vector<Tensor>& sources) = 0;
  };

  // Copies tensors of `device` (CPU tensors are copied as they are, on any device).
  explicit HostSnapshotter(Device device);
  // With a given device side (tests).
  explicit HostSnapshotter(std::unique_ptr<Impl> impl);
  HostSnapshotter(const HostSnapshotter&) = delete;
  HostSnapshotter& operator=(const HostSnapshotter&) = delete;
  ~HostSnapshotter();

  // Host copies of `sources`. The sources must not be overwritten before
  // fence.order_compute_after(), nor the copies read before fence.wait_on_host(); on the CPU both
  // hold on return. A GPU snapshotter reuses its pinned block for the next snapshot once no copy
  // of the previous one is alive (else it allocates another).
  HostSnapshot take(const std::vector<Tensor>& sources);

 private:
  std::unique_ptr<Impl> impl_;  // null on the CPU
};

namespace test_hooks {

// Makes every HostSnapshotter constructed afterwards for the CPU use the Impl that `factory`
// returns (a test's fake of the GPU's ordering); nullptr (the default) restores plain copies.
// Process-wide.
using SnapshotImplFactory = std::unique_ptr<HostSnapshotter::Impl> (*)();
void set_cpu_snapshot_impl(SnapshotImplFactory factory) noexcept;

}  // namespace test_hooks
}  // namespace dpt
