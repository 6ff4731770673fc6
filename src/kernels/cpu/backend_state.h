// SPDX-License-Identifier: MIT
// CpuBackendState: the oneDNN engine, stream and the per-shape cache of primitives, their
// primitive_descs, reorders and internal buffers. Lives inside the Context (one per Context, never
// static); like the Context it is not thread-safe: one host thread issues a Context's ops.
#pragma once

#include <cstdint>
#include <dnnl.hpp>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

#include "runtime/context.h"

namespace dpt::kernels::cpu {

// Converts oneDNN's exception into dpt::Error naming the op.
[[noreturn]] void throw_dnnl(const char* op, const dnnl::error& e);

// Runs f (building or executing primitives); a dnnl::error becomes a dpt::Error naming op.
template <typename F>
auto dnnl_call(const char* op, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const dnnl::error& e) {
    throw_dnnl(op, e);
  }
}

// Base of everything kept in the cache.
struct CacheEntry {
  virtual ~CacheEntry() = default;
};

class CpuBackendState : public BackendState {
 public:
  explicit CpuBackendState(const Context& ctx);

  dnnl::engine& engine() noexcept { return engine_; }
  dnnl::stream& stream() noexcept { return stream_; }

  // The entry under `key`, built by make() (returning std::unique_ptr<Entry>) on first use; a
  // oneDNN error while building it becomes a dpt::Error naming `op`.
  template <typename Entry, typename Make>
  Entry& cached(const std::string& key, const char* op, Make&& make) {
    auto it = cache_.find(key);
    if (it == cache_.end()) it = cache_.emplace(key, dnnl_call(op, std::forward<Make>(make))).first;
    return static_cast<Entry&>(*it->second);
  }
  std::size_t cache_size() const noexcept { return cache_.size(); }

 private:
  dnnl::engine engine_;
  dnnl::stream stream_;
  std::unordered_map<std::string, std::unique_ptr<CacheEntry>> cache_;
};

CpuBackendState& state_of(const Context& ctx);

// A user tensor (plain layout, pointer set per call) and the memory the primitive works on: the
// same object when the primitive accepts the plain layout, else an internal buffer plus a cached
// reorder in the needed direction.
struct Operand {
  dnnl::memory user;
  dnnl::memory inner;
  std::optional<dnnl::reorder> reorder;

  // to_primitive: the data flows user -> primitive (an input); else primitive -> user (an output).
  // force_inner with a sum post-op makes an output reorder accumulate (dst += result).
  static Operand make(dnnl::engine& engine, const dnnl::memory::desc& user_md,
                      const dnnl::memory::desc& prim_md, bool to_primitive,
                      bool accumulate = false);
  void bind(const void* data) { user.set_data_handle(const_cast<void*>(data)); }
  void to_inner(dnnl::stream& s) {
    if (reorder) reorder->execute(s, user, inner);
  }
  void to_user(dnnl::stream& s) {
    if (reorder) reorder->execute(s, inner, user);
  }
};

// Row-major C[m,n] = op(A)[m,k] * op(B)[k,n] + beta * C by dnnl_sgemm (trans 'N' or 'T'); a failure
// throws naming op and the sizes.
void sgemm(const char* op, char transa, char transb, std::int64_t m, std::int64_t n, std::int64_t k,
           const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
           std::int64_t ldc);

// Attributes every cached primitive uses: a user-provided scratchpad (kept in the cache entry, so
// oneDNN allocates nothing per call).
dnnl::primitive_attr base_attr();
// Scratchpad memory for pd, added to args.
void add_scratchpad(dnnl::engine& engine, const dnnl::memory::desc& md,
                    std::unordered_map<int, dnnl::memory>& args);

}  // namespace dpt::kernels::cpu
