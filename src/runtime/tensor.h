// SPDX-License-Identifier: MIT
// Tensor: a shape, a dtype and a view into reference-counted storage. Copies share storage (like
// PyTorch tensors); clone() copies the data. Views into one flat buffer are how gradients live
// inside the all-reduce buckets without a copy.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "runtime/check.h"
#include "runtime/device.h"
#include "runtime/dtype.h"

namespace dpt {

using Shape = std::vector<std::int64_t>;

std::int64_t numel_of(const Shape& shape);
std::string to_string(const Shape& shape);

// Move-only owner of one allocation.
class Storage {
 public:
  // cuda_stream: for GPU memory, the cudaStream_t whose order the allocation joins (default: the
  // device's compute stream). It is always freed on the compute stream.
  Storage(std::size_t size_bytes, Device device, void* cuda_stream = nullptr);
  // Memory allocated elsewhere (a pinned host block): `owner` keeps it alive and frees it, this
  // storage never does.
  Storage(void* data, std::size_t size_bytes, Device device, std::shared_ptr<const void> owner);
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage();

  void* data() const noexcept { return data_; }
  std::size_t size_bytes() const noexcept { return size_bytes_; }
  const Device& device() const noexcept { return device_; }

 private:
  void* data_ = nullptr;
  std::size_t size_bytes_ = 0;
  Device device_;
  std::shared_ptr<const void> owner_;  // set for memory allocated elsewhere
};

class Tensor {
 public:
  Tensor() = default;

  // Uninitialised memory.
  static Tensor empty(Shape shape, DType dtype = DType::kF32, Device device = Device::cpu());
  // GPU memory allocated in the order of `cuda_stream` (a cudaStream_t) instead of the compute
  // stream: the batch uploader's copy stream fills it without waiting for queued kernels.
  static Tensor empty_on_stream(Shape shape, DType dtype, Device device, void* cuda_stream);
  static Tensor zeros(Shape shape, DType dtype = DType::kF32, Device device = Device::cpu());
  static Tensor full(Shape shape, float value, Device device = Device::cpu());
  static Tensor from_vector(Shape shape, const std::vector<float>& values);
  // A tensor over memory allocated elsewhere (at least shape's size, on `device`); `owner` keeps
  // it alive while any tensor over it does (a snapshot's pinned block: runtime/host_snapshot.h).
  static Tensor over_memory(void* data, Shape shape, DType dtype, Device device,
                            std::shared_ptr<const void> owner);

  // A tensor of `shape` over the elements of `base` starting at element `offset`; shares storage.
  static Tensor view_of(const Tensor& base, std::int64_t offset, Shape shape);
  // Rows [first, first + count) of `base` along its first dimension (a batch's samples); shares
  // storage.
  static Tensor rows_of(const Tensor& base, std::int64_t first, std::int64_t count);

  bool defined() const noexcept { return storage_ != nullptr; }
  const Shape& shape() const noexcept { return shape_; }
  int rank() const noexcept { return static_cast<int>(shape_.size()); }
  std::int64_t dim(int i) const;
  std::int64_t numel() const noexcept { return numel_; }
  std::size_t size_bytes() const noexcept { return static_cast<std::size_t>(numel_) * size_of(dtype_); }
  DType dtype() const noexcept { return dtype_; }
  Device device() const;

  template <typename T>
  T* data() {
    check_dtype(dtype_of<T>());
    return static_cast<T*>(raw_data());
  }
  template <typename T>
  const T* data() const {
    check_dtype(dtype_of<T>());
    return static_cast<const T*>(raw_data());
  }
  void* raw_data() const noexcept;

  // Same storage, new shape with the same number of elements.
  Tensor reshape(Shape shape) const;
  // A new tensor with its own copy of the data (on the same device).
  Tensor clone() const;
  // A copy on `device` (host <-> GPU copies go through the GPU's compute stream and are complete,
  // for the host side, when this returns).
  Tensor to(Device device) const;
  // Copies src's elements into this tensor (same numel and dtype; either may be on a GPU).
  void copy_from(const Tensor& src);
  void fill(float value);
  void zero();
  std::vector<float> to_vector() const;

  // True when both tensors use the same storage.
  bool shares_storage_with(const Tensor& other) const noexcept { return storage_ == other.storage_; }
  // The allocation this tensor views (null when undefined): to count memory once per allocation.
  const Storage* storage() const noexcept { return storage_.get(); }

 private:
  // empty() and empty_on_stream(): a new storage of shape's size.
  static Tensor allocate(Shape shape, DType dtype, Device device, void* cuda_stream);
  void check_dtype(DType expected) const;

  std::shared_ptr<Storage> storage_;
  std::size_t offset_bytes_ = 0;
  Shape shape_;
  std::int64_t numel_ = 0;
  DType dtype_ = DType::kF32;
};

}  // namespace dpt
