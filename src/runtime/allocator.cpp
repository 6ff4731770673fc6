// SPDX-License-Identifier: MIT
// HostAllocator: aligned blocks from the system, recycled through per-size free lists.
#include "runtime/allocator.h"

#include <cstdlib>
#include <new>

#include "runtime/check.h"
#include "runtime/memory.h"

namespace dpt {

HostAllocator::~HostAllocator() { release_cached(); }

HostAllocator& HostAllocator::instance() {
  static HostAllocator allocator;
  return allocator;
}

std::size_t HostAllocator::round_up(std::size_t size_bytes) {
  // Small blocks round to 64 bytes; large ones to 1/8 of their power of two, which bounds waste
  // at 12.5% and keeps the number of distinct sizes small across varying batch shapes.
  if (size_bytes <= 4096) return (size_bytes + kAlignment - 1) / kAlignment * kAlignment;
  std::size_t power = 4096;
  while (power * 2 <= size_bytes) power *= 2;
  const std::size_t step = power / 8;
  return (size_bytes + step - 1) / step * step;
}

void* HostAllocator::allocate(std::size_t size_bytes) {
  DPT_CHECK(size_bytes <= kMaxBlockBytes, "host allocation of ", size_bytes,
            " bytes refused: larger than ", kMaxBlockBytes, " (a shape overflow?)");
  const std::size_t rounded = round_up(size_bytes == 0 ? 1 : size_bytes);
  {
    std::lock_guard lock(mutex_);
    auto it = free_blocks_.find(rounded);
    if (it != free_blocks_.end() && !it->second.empty()) {
      void* ptr = it->second.back();
      it->second.pop_back();
      ++stats_.reused;
      stats_.cached_bytes -= rounded;
      return ptr;
    }
    ++stats_.system_allocations;
  }
  // A block larger than the machine's memory cannot succeed; refusing it here also keeps it from
  // sanitizer allocators, which abort on sizes beyond theirs instead of returning null.
  static const std::uint64_t physical = memory_limits().physical_bytes;
  void* ptr = rounded <= physical ? std::aligned_alloc(kAlignment, rounded) : nullptr;
  if (ptr == nullptr && rounded <= physical) {
    release_cached();  // give the cache back and try once more before failing
    ptr = std::aligned_alloc(kAlignment, rounded);
  }
  if (ptr == nullptr) {
    DPT_OUT_OF_MEMORY("host allocation of ", format_bytes(rounded), " failed (",
                      memory_limits().describe(), ")");
  }
  return ptr;
}

void HostAllocator::deallocate(void* ptr, std::size_t size_bytes) noexcept {
  if (ptr == nullptr) return;
  const std::size_t rounded = round_up(size_bytes == 0 ? 1 : size_bytes);
  std::lock_guard lock(mutex_);
  try {
    free_blocks_[rounded].push_back(ptr);
    stats_.cached_bytes += rounded;
  } catch (...) {
    std::free(ptr);  // the free list could not grow: return the block to the system instead
  }
}

void HostAllocator::release_cached() noexcept {
  std::lock_guard lock(mutex_);
  for (auto& [size, blocks] : free_blocks_) {
    for (void* ptr : blocks) std::free(ptr);
  }
  free_blocks_.clear();
  stats_.cached_bytes = 0;
}

HostAllocator::Stats HostAllocator::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

}  // namespace dpt
