// SPDX-License-Identifier: MIT
#include "runtime/host_snapshot.h"

#include <atomic>
#include <exception>

#include "runtime/check.h"
#include "runtime/gpu_backend.h"
#include "runtime/logging.h"

namespace dpt {
namespace {

std::atomic<test_hooks::SnapshotImplFactory> cpu_snapshot_impl{nullptr};

}  // namespace

SnapshotFence::SnapshotFence(std::shared_ptr<Impl> impl)
    : state_(std::make_shared<State>(std::move(impl))) {}

SnapshotFence::State::~State() {
  if (ordered) return;
  try {
    impl->make_compute_wait();
  } catch (const std::exception& e) {
    log(LogLevel::kWarning,
        "a snapshot: ordering the compute stream after its copies failed: ", e.what());
  }
}

void SnapshotFence::wait_on_host() const {
  if (state_) state_->impl->wait_on_host();
}

void SnapshotFence::order_compute_after() {
  if (!state_ || state_->ordered) return;
  state_->impl->make_compute_wait();
  state_->ordered = true;
}

bool SnapshotFence::pending() const { return state_ && !state_->ordered; }

HostSnapshotter::HostSnapshotter(Device device) {
  if (device.type == DeviceType::kCuda) {
    impl_ = gpu_backend::make_host_snapshotter(device.index);
  } else if (const test_hooks::SnapshotImplFactory factory = cpu_snapshot_impl.load()) {
    impl_ = factory();
  }
}

HostSnapshotter::HostSnapshotter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HostSnapshotter::~HostSnapshotter() = default;

HostSnapshot HostSnapshotter::take(const std::vector<Tensor>& sources) {
  if (impl_) return impl_->take(sources);
  HostSnapshot snapshot;
  snapshot.copies.reserve(sources.size());
  for (const Tensor& source : sources) snapshot.copies.push_back(source.to(Device::cpu()));
  return snapshot;
}

namespace test_hooks {

void set_cpu_snapshot_impl(SnapshotImplFactory factory) noexcept { cpu_snapshot_impl = factory; }

}  // namespace test_hooks
}  // namespace dpt
