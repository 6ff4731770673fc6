// SPDX-License-Identifier: MIT
// HostSnapshotter and SnapshotFence: on the CPU the copies are complete on return and independent
// of their sources; a fence orders the compute side once, and its last owner does it if nobody
// did; a device side given to the snapshotter is the one used (the GPU's, in
// tests/cuda/cuda_model_test.cpp).
#include "runtime/host_snapshot.h"

#include <gtest/gtest.h>

#include <cstring>

namespace dpt {
namespace {

struct Calls {
  int host_waits = 0;
  int compute_waits = 0;
  int takes = 0;
};

class CountingFence final : public SnapshotFence::Impl {
 public:
  explicit CountingFence(Calls& calls) : calls_(calls) {}
  void wait_on_host() override { ++calls_.host_waits; }
  void make_compute_wait() override { ++calls_.compute_waits; }

 private:
  Calls& calls_;
};

class CountingSnapshotter final : public HostSnapshotter::Impl {
 public:
  explicit CountingSnapshotter(Calls& calls) : calls_(calls) {}
  HostSnapshot take(const std::vector<Tensor>& sources) override {
    ++calls_.takes;
    HostSnapshot s;
    for (const Tensor& t : sources) s.copies.push_back(Tensor::zeros(t.shape()));
    s.fence = SnapshotFence(std::make_shared<CountingFence>(calls_));
    return s;
  }

 private:
  Calls& calls_;
};

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.raw_data(), b.raw_data(), a.size_bytes()) == 0;
}

TEST(HostSnapshot, CpuCopiesAreCompleteOnReturnAndIndependentOfTheirSources) {
  HostSnapshotter snapshotter(Device::cpu());
  Tensor a = Tensor::from_vector({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor b = Tensor::from_vector({4}, {-1, 0.5f, 1e-30f, 7});
  const Tensor a0 = a.clone(), b0 = b.clone();
  HostSnapshot s = snapshotter.take({a, b});
  ASSERT_EQ(s.copies.size(), 2u);
  EXPECT_FALSE(s.fence.pending()) << "nothing to order on the CPU";
  a.fill(9.0f);  // training goes on at once
  b.zero();
  EXPECT_TRUE(same_bits(s.copies[0], a0));
  EXPECT_TRUE(same_bits(s.copies[1], b0));
  EXPECT_FALSE(s.copies[0].shares_storage_with(a));
  s.fence.wait_on_host();  // no-ops
  s.fence.order_compute_after();
}

TEST(HostSnapshot, FenceOrdersTheComputeSideOnceAndItsLastOwnerDoesItIfNobodyDid) {
  Calls calls;
  {
    HostSnapshotter snapshotter(std::make_unique<CountingSnapshotter>(calls));
    HostSnapshot s = snapshotter.take({Tensor::zeros({3})});
    EXPECT_EQ(calls.takes, 1);
    EXPECT_TRUE(s.fence.pending());
    SnapshotFence writer_copy = s.fence;  // as the checkpoint writer holds one
    writer_copy.wait_on_host();
    writer_copy.wait_on_host();
    EXPECT_EQ(calls.host_waits, 2) << "every host wait reaches the device side";
    s.fence.order_compute_after();
    s.fence.order_compute_after();
    EXPECT_FALSE(writer_copy.pending()) << "copies of a fence share its state";
    writer_copy.order_compute_after();
    EXPECT_EQ(calls.compute_waits, 1);
  }
  EXPECT_EQ(calls.compute_waits, 1) << "ordered already: the destructor adds nothing";

  {
    HostSnapshotter snapshotter(std::make_unique<CountingSnapshotter>(calls));
    HostSnapshot s = snapshotter.take({});
    SnapshotFence kept = s.fence;
    s = HostSnapshot();
    EXPECT_EQ(calls.compute_waits, 1) << "a copy of the fence is still alive";
  }
  EXPECT_EQ(calls.compute_waits, 2) << "the last owner orders the compute side";
}

// The hook is a plain function pointer: its state is global.
Calls g_calls;
std::unique_ptr<HostSnapshotter::Impl> make_counting() {
  return std::make_unique<CountingSnapshotter>(g_calls);
}

TEST(HostSnapshot, TestHookReplacesTheCpuSideOfSnapshottersMadeAfterIt) {
  test_hooks::set_cpu_snapshot_impl(make_counting);
  HostSnapshotter hooked(Device::cpu());
  test_hooks::set_cpu_snapshot_impl(nullptr);
  HostSnapshotter plain(Device::cpu());
  const Tensor x = Tensor::full({2}, 3.0f);
  EXPECT_TRUE(hooked.take({x}).fence.pending());
  EXPECT_EQ(g_calls.takes, 1);
  EXPECT_FALSE(plain.take({x}).fence.pending());
  EXPECT_EQ(g_calls.takes, 1);
}

TEST(HostSnapshot, TensorOverMemoryKeepsItsOwnerAliveAndNeverFreesTheMemory) {
  auto block = std::make_shared<std::vector<float>>(8, 2.0f);
  std::weak_ptr<std::vector<float>> watch = block;
  Tensor view = Tensor::over_memory(block->data() + 4, {2, 2}, DType::kF32, Device::cpu(), block);
  block.reset();
  ASSERT_FALSE(watch.expired()) << "the tensor keeps its owner";
  EXPECT_EQ(view.to_vector(), std::vector<float>(4, 2.0f));
  Tensor part = Tensor::view_of(view, 2, {2});
  view = Tensor();
  EXPECT_FALSE(watch.expired()) << "a view of it too";
  part = Tensor();
  EXPECT_TRUE(watch.expired()) << "released with the last tensor (by its owner, not by free())";
  EXPECT_THROW(Tensor::over_memory(nullptr, {1}, DType::kF32, Device::cpu(), nullptr), Error);
}

}  // namespace
}  // namespace dpt
