// SPDX-License-Identifier: MIT
// Tensor and Storage: allocation through HostAllocator, views, copies and fills.
#include "runtime/tensor.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <sstream>

#include "runtime/allocator.h"
#include "runtime/gpu_backend.h"
#include "runtime/memory.h"

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

namespace {

bool on_cuda(const Device& device) { return device.type == DeviceType::kCuda; }

// Copies between any two of host and CUDA memory; the CUDA side's compute stream orders it.
void copy_bytes(void* dst, const Device& dst_device, const void* src, const Device& src_device,
                std::size_t size_bytes) {
  if (size_bytes == 0 || dst == src) return;
  if (!on_cuda(dst_device) && !on_cuda(src_device)) {
    std::memmove(dst, src, size_bytes);
    return;
  }
  DPT_CHECK(!on_cuda(dst_device) || !on_cuda(src_device) || dst_device == src_device,
            "copy from ", to_string(src_device), " to ", to_string(dst_device),
            ": copies between two GPUs are not supported");
  const int device = on_cuda(dst_device) ? dst_device.index : src_device.index;
  gpu_backend::copy(dst, on_cuda(dst_device), src, on_cuda(src_device), size_bytes, device);
}

}  // namespace

Storage::Storage(std::size_t size_bytes, Device device, void* cuda_stream)
    : size_bytes_(size_bytes), device_(device) {
  if (on_cuda(device)) {
    data_ = gpu_backend::allocate(size_bytes, device.index, cuda_stream);
    return;
  }
  data_ = HostAllocator::instance().allocate(size_bytes);
}

Storage::Storage(void* data, std::size_t size_bytes, Device device,
                 std::shared_ptr<const void> owner)
    : data_(data), size_bytes_(size_bytes), device_(device), owner_(std::move(owner)) {
  DPT_CHECK(owner_ != nullptr, "a storage over memory allocated elsewhere needs its owner");
}

Storage::~Storage() {
  if (owner_) return;  // owner_'s own release frees it
  if (on_cuda(device_)) {
    gpu_backend::deallocate(data_, device_.index);
    return;
  }
  HostAllocator::instance().deallocate(data_, size_bytes_);
}

Tensor Tensor::empty(Shape shape, DType dtype, Device device) {
  return allocate(std::move(shape), dtype, device, nullptr);
}

Tensor Tensor::empty_on_stream(Shape shape, DType dtype, Device device, void* cuda_stream) {
  DPT_CHECK(on_cuda(device), "empty_on_stream: ", to_string(device), " is not a GPU");
  return allocate(std::move(shape), dtype, device, cuda_stream);
}

Tensor Tensor::allocate(Shape shape, DType dtype, Device device, void* cuda_stream) {
  Tensor t;
  t.numel_ = numel_of(shape);
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  try {
    t.storage_ = std::make_shared<Storage>(t.size_bytes(), device, cuda_stream);
  } catch (const OutOfMemoryError& e) {
    // Say what the memory was for: the shape tells which tensor of which layer it was.
    DPT_OUT_OF_MEMORY("cannot allocate a ", to_string(dtype), " tensor of shape ",
                      to_string(t.shape_), " (", t.size_bytes(), " bytes) on ", to_string(device),
                      ": ", e.message().substr(e.message().rfind("out of memory: ", 0) == 0 ? 15 : 0));
  } catch (const std::bad_alloc&) {  // the control block or a device allocator's bookkeeping
    DPT_OUT_OF_MEMORY("cannot allocate a ", to_string(dtype), " tensor of shape ",
                      to_string(t.shape_), " (", t.size_bytes(), " bytes) on ", to_string(device));
  }
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

Tensor Tensor::over_memory(void* data, Shape shape, DType dtype, Device device,
                           std::shared_ptr<const void> owner) {
  Tensor t;
  t.numel_ = numel_of(shape);
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  t.storage_ = std::make_shared<Storage>(data, t.size_bytes(), device, std::move(owner));
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

Tensor Tensor::rows_of(const Tensor& base, std::int64_t first, std::int64_t count) {
  DPT_CHECK(base.defined() && base.rank() >= 1, "rows_of: needs a defined tensor of rank >= 1");
  Shape shape = base.shape_;
  const std::int64_t row = shape[0] > 0 ? base.numel_ / shape[0] : 0;
  shape[0] = count;
  return view_of(base, first * row, std::move(shape));
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

Tensor Tensor::clone() const { return to(device()); }

Tensor Tensor::to(Device target) const {
  Tensor t = empty(shape_, dtype_, target);
  copy_bytes(t.raw_data(), target, raw_data(), device(), size_bytes());
  return t;
}

void Tensor::copy_from(const Tensor& src) {
  DPT_CHECK(src.numel_ == numel_ && src.dtype_ == dtype_, "copy_from: ", to_string(src.shape_),
            " ", to_string(src.dtype_), " into ", to_string(shape_), " ", to_string(dtype_));
  copy_bytes(raw_data(), device(), src.raw_data(), src.device(), size_bytes());
}

void Tensor::fill(float value) {
  check_dtype(DType::kF32);
  if (on_cuda(device())) {
    // Fills happen at set-up (initial values), not per step: staging on the host is enough.
    const std::vector<float> host(static_cast<std::size_t>(numel_), value);
    copy_bytes(raw_data(), device(), host.data(), Device::cpu(), size_bytes());
    return;
  }
  float* p = data<float>();
  std::fill(p, p + numel_, value);
}

void Tensor::zero() {
  if (size_bytes() == 0) return;
  if (on_cuda(device())) {
    gpu_backend::zero(raw_data(), size_bytes(), device().index);
    return;
  }
  std::memset(raw_data(), 0, size_bytes());
}

std::vector<float> Tensor::to_vector() const {
  check_dtype(DType::kF32);
  std::vector<float> values(static_cast<std::size_t>(numel_));
  copy_bytes(values.data(), Device::cpu(), raw_data(), device(), size_bytes());
  return values;
}

}  // namespace dpt
