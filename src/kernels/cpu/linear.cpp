// SPDX-License-Identifier: MIT
// Linear layer on oneDNN matmul: forward with fused bias + ReLU, backward-data, and
// backward-weights with the accumulation done by matmul's sum post-op. Transposes are expressed as
// strides, so no operand is ever copied.
#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string>
#include <utility>
#include <unordered_map>

#include "kernels/cpu/backend_state.h"
#include "kernels/cpu/gemm_choice.h"
#include "kernels/cpu/invariant.h"
#include "kernels/cpu/kernels_cpu.h"
#include "runtime/check.h"
#include "runtime/memory.h"

namespace dpt::kernels::cpu {
namespace {

using dnnl::memory;
constexpr auto kF32 = dnnl::memory::data_type::f32;

// dst[rows, cols] = src[rows, inner] * wei[inner, cols] (+ bias[1, cols]); descs carry strides.
struct Matmul : CacheEntry {
  dnnl::primitive prim;
  memory src, wei, bias, dst;
  std::unordered_map<int, memory> args;
};

Matmul& cached_matmul(CpuBackendState& st, const std::string& key, const char* op,
                      const memory::desc& src_md, const memory::desc& wei_md,
                      const memory::desc* bias_md, const memory::desc& dst_md, bool relu,
                      bool accumulate) {
  return st.cached<Matmul>(key, op, [&] {
    auto entry = std::make_unique<Matmul>();
    const auto desc = bias_md ? dnnl::matmul::desc(src_md, wei_md, *bias_md, dst_md)
                              : dnnl::matmul::desc(src_md, wei_md, dst_md);
    dnnl::primitive_attr attr = base_attr();
    dnnl::post_ops po;
    if (accumulate) po.append_sum(1.0f);
    if (relu) po.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
    attr.set_post_ops(po);
    const dnnl::matmul::primitive_desc pd(desc, attr, st.engine());
    entry->prim = dnnl::matmul(pd);
    entry->src = memory(src_md, st.engine(), DNNL_MEMORY_NONE);
    entry->wei = memory(wei_md, st.engine(), DNNL_MEMORY_NONE);
    entry->dst = memory(dst_md, st.engine(), DNNL_MEMORY_NONE);
    entry->args = {
        {DNNL_ARG_SRC, entry->src}, {DNNL_ARG_WEIGHTS, entry->wei}, {DNNL_ARG_DST, entry->dst}};
    if (bias_md) {
      entry->bias = memory(*bias_md, st.engine(), DNNL_MEMORY_NONE);
      entry->args.insert({DNNL_ARG_BIAS, entry->bias});
    }
    add_scratchpad(st.engine(), pd.scratchpad_desc(), entry->args);
    return entry;
  });
}

void run(CpuBackendState& st, const char* op, Matmul& e, const float* src, const float* wei,
         const float* bias, float* dst) {
  e.src.set_data_handle(const_cast<float*>(src));
  e.wei.set_data_handle(const_cast<float*>(wei));
  if (bias) e.bias.set_data_handle(const_cast<float*>(bias));
  e.dst.set_data_handle(dst);
  dnnl_call(op, [&] {
    e.prim.execute(st.stream(), e.args);
    st.stream().wait();
  });
}

// Row-major [rows, cols], optionally read transposed: element (i, j) at i + j * rows.
memory::desc matrix(std::int64_t rows, std::int64_t cols, bool transposed = false) {
  return transposed ? memory::desc({rows, cols}, kF32, memory::dims{1, rows})
                    : memory::desc({rows, cols}, kF32, memory::dims{cols, 1});
}

// Note [Backward GEMMs]
// ~~~~~~~~~~~~~~~~~~~~~
// Forward runs oneDNN's matmul primitive (bias and ReLU fused). Backward-weights runs dnnl_sgemm
// (sgemm() of backend_state.h), the fastest TN product measured on every machine, whose beta = 1
// also gives accumulation for free. Backward-data (the NN product) runs the library that
// gemm_choice() names for this machine: OpenBLAS or dnnl_sgemm (Note [GEMM per machine]).
// Thread-invariant mode uses dnnl_sgemm for all three (Note [Thread-invariant kernels]).

}  // namespace

void linear_forward(const Context& ctx, const float* x, const float* w, const float* b, float* y,
                    std::int64_t n, std::int64_t k, std::int64_t m, bool relu) {
  if (ctx.thread_invariant()) return linear_forward_invariant(ctx, x, w, b, y, n, k, m, relu);
  CpuBackendState& st = state_of(ctx);
  const memory::desc bias_md = matrix(1, m);
  // y[n,m] = x[n,k] * w^T, w^T[k,m] read from w[m,k] with strides.
  Matmul& e = cached_matmul(
      st, detail::str("linear_fwd:", n, ',', k, ',', m, ';', b != nullptr, relu), "linear_forward",
      matrix(n, k), matrix(k, m, true), b ? &bias_md : nullptr, matrix(n, m), relu, false);
  run(st, "linear_forward", e, x, w, b, y);
}

// Note [OpenBLAS buffers]
// ~~~~~~~~~~~~~~~~~~~~~~~
// Every OpenBLAS thread (the caller, and each worker of its pool) mallocs a buffer of 128 MiB and
// a page on first use (BUFFER_SIZE of OpenBLAS 0.3 on x86-64), and when that fails it retries
// forever (memory.c, blas_memory_alloc): under an address-space limit (`ulimit -v`) the job would
// hang inside cblas_sgemm. So before the first call with a given thread count, the address space
// for that many buffers is reserved and released (nothing is committed); when it cannot be, the
// call is an out-of-memory error naming the bytes instead of a hang. Workers started when the
// library was loaded may hold theirs already, so the check errs on the safe side.
namespace {
constexpr std::uint64_t kOpenBlasBufferBytes = (std::uint64_t{128} << 20) + 4096;
std::atomic<int> g_openblas_checked_threads{0};

void check_openblas_buffers(int threads) {
  if (threads <= g_openblas_checked_threads.load(std::memory_order_relaxed)) return;
  const std::uint64_t bytes = kOpenBlasBufferBytes * static_cast<std::uint64_t>(threads);
  if (!can_reserve_address_space(bytes)) {
    DPT_OUT_OF_MEMORY("OpenBLAS needs ", format_bytes(bytes), " of address space for the buffers of ",
                      threads, " thread(s) (Note [OpenBLAS buffers]), which this process cannot "
                      "reserve (", memory_limits().describe(), ")");
  }
  g_openblas_checked_threads.store(threads, std::memory_order_relaxed);
}
}  // namespace

void linear_backward_data(const Context& ctx, const float* dy, const float* w, float* dx,
                          std::int64_t n, std::int64_t k, std::int64_t m) {
  if (ctx.thread_invariant()) return linear_backward_data_invariant(ctx, dy, w, dx, n, k, m);
  // dx[n,k] = dy[n,m] * w[m,k]; see Note [Backward GEMMs].
  if (gemm_choice().backward_data == GemmLibrary::kOneDnn) {
    sgemm("linear_backward_data", 'N', 'N', n, k, m, dy, m, w, k, 0.0f, dx, k);
    return;
  }
  DPT_CHECK(std::in_range<blasint>(n * std::max(k, m)), "linear_backward_data: [", n, ", ", m,
            "] x [", m, ", ", k, "] exceeds the BLAS integer range");
  check_openblas_buffers(ctx.threads());
  // OpenBLAS keeps its own thread pool: give it the context's thread count (a no-op when equal).
  if (openblas_get_num_threads() != ctx.threads()) openblas_set_num_threads(ctx.threads());
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<blasint>(n),
              static_cast<blasint>(k), static_cast<blasint>(m), 1.0f, dy, static_cast<blasint>(m),
              w, static_cast<blasint>(k), 0.0f, dx, static_cast<blasint>(k));
}

// dnnl_sgemm needs no engine or cache: the context's thread count reaches it through OpenMP.

void linear_backward_weights(const Context& ctx, const float* x, const float* dy, float* dw,
                             float* db, std::int64_t n, std::int64_t k, std::int64_t m,
                             bool accumulate) {
  // dw[m,k] (+)= dy^T[m,n] * x[n,k]
  if (ctx.thread_invariant()) {
    linear_backward_weights_invariant(ctx, x, dy, dw, n, k, m, accumulate);
  } else {
    sgemm("linear_backward_weights", 'T', 'N', m, k, n, dy, m, x, k, accumulate ? 1.0f : 0.0f, dw,
          k);
  }
  if (db == nullptr) return;
  // db[j] (+)= sum_i dy[i, j], rows added in order whatever the threads (so also in
  // thread-invariant mode); vectorises over j.
  if (!accumulate) {
    for (std::int64_t j = 0; j < m; ++j) db[j] = 0.0f;
  }
#pragma omp parallel for schedule(static) if (m >= 4096)
  for (std::int64_t j0 = 0; j0 < m; j0 += 256) {
    const std::int64_t j1 = j0 + 256 < m ? j0 + 256 : m;
    for (std::int64_t i = 0; i < n; ++i) {
      const float* row = dy + i * m;
      for (std::int64_t j = j0; j < j1; ++j) db[j] += row[j];
    }
  }
}

}  // namespace dpt::kernels::cpu
