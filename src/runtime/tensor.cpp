// SPDX-License-Identifier: MIT
// Tensor and Storage: allocation through HostAllocator, views, copies and fills.
#include "runtime/tensor.h"

#include <algorithm>
#include <cstring>
#include <sstream>

#include "runtime/allocator.h"

namespace dpt {

std::int64_t numel_of(const Shape& shape) {
  std::int64_t n = 1;
  for (std::int64_t d : shape) {
    DPT_CHECK(d >= 0, "shape ", to_string(shape), " has a negative dimension");
    DPT_CHECK(!__builtin_mul_overflow(n, d, &n), "shape ", to_string(shape),
              " has more elements than an int64 holds");
  }
  return n;
}

std::string to_string(const Shape& shape) {
  std::ostringstream out;
  out << '[';
  for (std::size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ']';
  return out.str();
}

Storage::Storage(std::size_t size_bytes, Device device) : size_bytes_(size_bytes), device_(device) {
  DPT_CHECK(device.type == DeviceType::kCpu, "storage on ", to_string(device),
            ": device memory is not built into this release");
  data_ = HostAllocator::instance().allocate(size_bytes);
}

Storage::~Storage() { HostAllocator::instance().deallocate(data_, size_bytes_); }

Tensor Tensor::empty(Shape shape, DType dtype, Device device) {
  Tensor t;
  t.numel_ = numel_of(shape);
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  t.storage_ = std::make_shared<Storage>(t.size_bytes(), device);
  return t;
}

Tensor Tensor::zeros(Shape shape, DType dtype, Device device) {
  Tensor t = empty(std::move(shape), dtype, device);
  t.zero();
  return t;
}

Tensor Tensor::full(Shape shape, float value, Device device) {
  Tensor t = empty(std::move(shape), DType::kF32, device);
  t.fill(value);
  return t;
}

Tensor Tensor::from_vector(Shape shape, const std::vector<float>& values) {
  Tensor t = empty(std::move(shape));
  DPT_CHECK(static_cast<std::int64_t>(values.size()) == t.numel(), "from_vector: ", values.size(),
            " values for shape ", to_string(t.shape()));
  std::copy(values.begin(), values.end(), t.data<float>());
  return t;
}

Tensor Tensor::view_of(const Tensor& base, std::int64_t offset, Shape shape) {
  DPT_CHECK(base.defined(), "view_of: undefined base tensor");
  Tensor t;
  t.numel_ = numel_of(shape);
  DPT_CHECK(offset >= 0 && offset + t.numel_ <= base.numel_, "view_of: elements [", offset, ", ",
            offset + t.numel_, ") outside a base of ", base.numel_);
  t.storage_ = base.storage_;
  t.offset_bytes_ = base.offset_bytes_ + static_cast<std::size_t>(offset) * size_of(base.dtype_);
  t.shape_ = std::move(shape);
  t.dtype_ = base.dtype_;
  return t;
}

std::int64_t Tensor::dim(int i) const {
  DPT_CHECK(i >= 0 && i < rank(), "dim ", i, " of a rank-", rank(), " tensor");
  return shape_[static_cast<std::size_t>(i)];
}

Device Tensor::device() const { return storage_ ? storage_->device() : Device::cpu(); }

void* Tensor::raw_data() const noexcept {
  return storage_ ? static_cast<char*>(storage_->data()) + offset_bytes_ : nullptr;
}

void Tensor::check_dtype(DType expected) const {
  DPT_CHECK(dtype_ == expected, "tensor of dtype ", to_string(dtype_), " read as ",
            to_string(expected));
}

Tensor Tensor::reshape(Shape shape) const {
  DPT_CHECK(numel_of(shape) == numel_, "reshape ", to_string(shape_), " to ", to_string(shape),
            ": element counts differ");
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::clone() const {
  Tensor t = empty(shape_, dtype_, device());
  if (size_bytes() > 0) std::memcpy(t.raw_data(), raw_data(), size_bytes());
  return t;
}

void Tensor::copy_from(const Tensor& src) {
  DPT_CHECK(src.numel_ == numel_ && src.dtype_ == dtype_, "copy_from: ", to_string(src.shape_),
            " ", to_string(src.dtype_), " into ", to_string(shape_), " ", to_string(dtype_));
  if (size_bytes() > 0 && raw_data() != src.raw_data()) {
    std::memmove(raw_data(), src.raw_data(), size_bytes());
  }
}

void Tensor::fill(float value) {
  float* p = data<float>();
  std::fill(p, p + numel_, value);
}

void Tensor::zero() {
  if (size_bytes() > 0) std::memset(raw_data(), 0, size_bytes());
}

std::vector<float> Tensor::to_vector() const {
  const float* p = data<float>();
  return std::vector<float>(p, p + numel_);
}

}  // namespace dpt
