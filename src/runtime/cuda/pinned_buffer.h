// SPDX-License-Identifier: MIT
// Page-locked host memory (cudaHostAlloc): the staging area copies to the GPU run from without
// the driver's own bounce buffer, so a cudaMemcpyAsync from it is truly asynchronous.
#pragma once

#include <cstddef>
#include <utility>

namespace dpt::cuda {

class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  explicit PinnedBuffer(std::size_t size_bytes);
  PinnedBuffer(PinnedBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_bytes_(std::exchange(other.size_bytes_, 0)) {}
  PinnedBuffer& operator=(PinnedBuffer&& other) noexcept {
    if (this != &other) {
      reset();
      data_ = std::exchange(other.data_, nullptr);
      size_bytes_ = std::exchange(other.size_bytes_, 0);
    }
    return *this;
  }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  ~PinnedBuffer() { reset(); }

  void* data() const noexcept { return data_; }
  std::size_t size_bytes() const noexcept { return size_bytes_; }

 private:
  void reset() noexcept;
  void* data_ = nullptr;
  std::size_t size_bytes_ = 0;
};

}  // namespace dpt::cuda
