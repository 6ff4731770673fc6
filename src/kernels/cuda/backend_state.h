// SPDX-License-Identifier: MIT
// CudaBackendState: what the CUDA backend keeps per Context (never static): the compute stream,
// the cuDNN and cuBLASLt handles bound to it (created on first use, so a context that only runs
// elementwise kernels never loads cuDNN), one workspace shared by cuDNN and cuBLASLt, a scratch
// buffer for results going back to the host, and the per-shape cache (convolution descriptors and
// algorithms, matmul descriptors and algorithms). Like the Context it is not thread-safe: one host
// thread issues a Context's ops, and every call is ordered on the one compute stream, which is why
// one workspace serves every library call.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>

#include "kernels/cuda/handles.h"
#include "runtime/context.h"

namespace dpt::kernels::cuda {

// Move-only device allocation on the compute stream of one device; grows, never shrinks.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(int device) : device_(device) {}
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { release(); }

  // At least `bytes` of device memory (previous contents are not kept when it grows).
  void* reserve(std::size_t bytes);
  void* get() const noexcept { return ptr_; }
  std::size_t size() const noexcept { return size_; }

 private:
  void release() noexcept;
  int device_;
  void* ptr_ = nullptr;
  std::size_t size_ = 0;
};

// Base of everything kept in the per-shape cache.
struct CacheEntry {
  virtual ~CacheEntry() = default;
};

class CudaBackendState : public BackendState {
 public:
  explicit CudaBackendState(const Context& ctx);

  int device() const noexcept { return device_; }
  cudaStream_t stream() const noexcept { return stream_; }
  // cuDNN/cuBLASLt handles, created on first use and bound to stream().
  cudnnHandle_t cudnn();
  cublasLtHandle_t cublaslt();
  // Pick only deterministic cuDNN algorithms and cuBLASLt configurations (DESIGN.md,
  // Determinism). Always true today; the switch is where a "fast, non-deterministic" mode goes.
  bool deterministic() const noexcept { return deterministic_; }

  // The library workspace (cuDNN algorithms, cuBLASLt) and the scratch buffer (launch.h).
  void* workspace(std::size_t bytes) { return bytes == 0 ? nullptr : workspace_.reserve(bytes); }
  void* scratch(std::size_t bytes) { return scratch_.reserve(bytes); }

  // The entry under `key`, built by make() (returning std::unique_ptr<Entry>) on first use.
  template <typename Entry, typename Make>
  Entry& cached(const std::string& key, Make&& make) {
    auto it = cache_.find(key);
    if (it == cache_.end()) it = cache_.emplace(key, std::forward<Make>(make)()).first;
    return static_cast<Entry&>(*it->second);
  }
  std::size_t cache_size() const noexcept { return cache_.size(); }

 private:
  int device_;
  cudaStream_t stream_;
  bool deterministic_ = true;
  // Declared before the cache: destroyed after the descriptors that were made with them.
  CudnnHandle cudnn_;
  CublasLtHandle cublaslt_;
  DeviceBuffer workspace_;
  DeviceBuffer scratch_;
  std::unordered_map<std::string, std::unique_ptr<CacheEntry>> cache_;
};

CudaBackendState& state_of(const Context& ctx);

}  // namespace dpt::kernels::cuda
