// SPDX-License-Identifier: MIT
// Host memory: 64-byte aligned blocks, kept in per-size free lists and handed out again, so a
// training step after the first allocates nothing from the system.
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <vector>

namespace dpt {

class HostAllocator {
 public:
  static constexpr std::size_t kAlignment = 64;
  // No single block may exceed 2^50 bytes (1 PiB): a larger request is a size computation gone
  // wrong, and refusing it keeps round_up() free of overflow.
  static constexpr std::size_t kMaxBlockBytes = std::size_t{1} << 50;

  HostAllocator() = default;
  HostAllocator(const HostAllocator&) = delete;
  HostAllocator& operator=(const HostAllocator&) = delete;
  ~HostAllocator();

  // Returns a block of at least size_bytes, aligned to kAlignment. Never returns nullptr.
  void* allocate(std::size_t size_bytes);
  void deallocate(void* ptr, std::size_t size_bytes) noexcept;
  // Frees every cached block back to the system.
  void release_cached() noexcept;

  struct Stats {
    std::size_t system_allocations = 0;  // calls that went to the system
    std::size_t reused = 0;              // calls served from the cache
    std::size_t cached_bytes = 0;
  };
  Stats stats() const;
  // The block size a request of size_bytes is served from (what the cache keys on).
  static std::size_t round_up(std::size_t size_bytes);

  // The process-wide host allocator. Host memory is not a device resource: keeping it for the
  // process lifetime is safe and lets tensors outlive any Context.
  static HostAllocator& instance();

 private:
  mutable std::mutex mutex_;
  std::map<std::size_t, std::vector<void*>> free_blocks_;  // rounded size -> blocks
  Stats stats_;
};

}  // namespace dpt
