// SPDX-License-Identifier: MIT
// Host allocator: alignment and reuse of freed blocks across "steps".
#include <gtest/gtest.h>

#include <cstdint>

#include "runtime/allocator.h"
#include "runtime/check.h"
#include "runtime/memory.h"
#include "runtime/tensor.h"

namespace dpt {
namespace {

TEST(HostAllocator, AlignedAndReused) {
  HostAllocator allocator;
  void* a = allocator.allocate(1000);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a) % HostAllocator::kAlignment, 0u);
  allocator.deallocate(a, 1000);
  void* b = allocator.allocate(990);  // same size class: the cached block comes back
  EXPECT_EQ(a, b);
  EXPECT_EQ(allocator.stats().system_allocations, 1u);
  EXPECT_EQ(allocator.stats().reused, 1u);
  allocator.deallocate(b, 990);
}

TEST(HostAllocator, SecondStepAllocatesNothingNew) {
  auto step = [] {
    Tensor x = Tensor::empty({128, 784});
    Tensor h = Tensor::empty({128, 2048});
    Tensor y = Tensor::empty({128, 10});
    return x.numel() + h.numel() + y.numel();
  };
  step();
  const auto before = HostAllocator::instance().stats().system_allocations;
  for (int i = 0; i < 5; ++i) step();
  EXPECT_EQ(HostAllocator::instance().stats().system_allocations, before);
}

// A tensor larger than the machine's memory: an OutOfMemoryError naming the shape and the bytes,
// never std::bad_alloc, a null block or a sanitizer's "allocation too big".
TEST(HostAllocator, TensorBeyondMemoryIsOutOfMemoryNamingShapeAndBytes) {
  const std::int64_t side = std::int64_t{1} << 20;  // 4 TiB of float32
  ASSERT_LT(memory_limits().physical_bytes, std::uint64_t{1} << 42);
  try {
    Tensor::empty({side, side});
    FAIL() << "allocated 4 TiB";
  } catch (const OutOfMemoryError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("out of memory"), std::string::npos) << what;
    EXPECT_NE(what.find("[1048576, 1048576]"), std::string::npos) << what;
    EXPECT_NE(what.find("4398046511104 bytes"), std::string::npos) << what;
    EXPECT_NE(what.find("physical memory"), std::string::npos) << what;
  }
}

TEST(HostAllocator, LargeSizesRoundWithBoundedWaste) {
  for (std::size_t size : {1ul, 63ul, 64ul, 4095ul, 4097ul, 100000ul, 123456789ul, 1ul << 40}) {
    const std::size_t block = HostAllocator::round_up(size);
    EXPECT_GE(block, size);
    EXPECT_EQ(block % HostAllocator::kAlignment, 0u) << size;
    EXPECT_LE(block, size + size / 8 + HostAllocator::kAlignment) << size;  // at most 12.5% waste
  }
  HostAllocator allocator;
  void* a = allocator.allocate(100000);
  allocator.deallocate(a, 100000);
  void* b = allocator.allocate(200000);  // a different class: no reuse of the smaller block
  EXPECT_NE(a, b);
  allocator.deallocate(b, 200000);
  EXPECT_THROW(allocator.allocate(HostAllocator::kMaxBlockBytes + 1), Error);
}

}  // namespace
}  // namespace dpt
