// SPDX-License-Identifier: MIT
// Page-locked host memory (cudaHostAlloc): the staging area copies to the GPU run from without
// the driver's own bounce buffer, so a cudaMemcpyAsync from it is truly asynchronous.
#pragma once

#include <cstddef>

#include "runtime/unique_handle.h"

namespace dpt::cuda {

struct PinnedTraits {
  using handle_type = void*;
  static void* null() noexcept { return nullptr; }
  static void close(void* data) noexcept;  // cudaFreeHost
};

class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  explicit PinnedBuffer(std::size_t size_bytes);

  void* data() const noexcept { return data_.get(); }
  // 0 once moved from: the size belongs to the allocation.
  std::size_t size_bytes() const noexcept { return data_ ? size_bytes_ : 0; }

 private:
  UniqueHandle<PinnedTraits> data_;
  std::size_t size_bytes_ = 0;
};

}  // namespace dpt::cuda
