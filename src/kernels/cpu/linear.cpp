// SPDX-License-Identifier: MIT
// Linear layer on oneDNN matmul: forward with fused bias + ReLU, backward-data, and
// backward-weights with the accumulation done by matmul's sum post-op. Transposes are expressed as
// strides, so no operand is ever copied.
#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>

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

// Operands of any data type (f32, or bf16 inputs with f32 bias and output).
void run(CpuBackendState& st, const char* op, Matmul& e, const void* src, const void* wei,
         const float* bias, float* dst) {
  e.src.set_data_handle(const_cast<void*>(src));
  e.wei.set_data_handle(const_cast<void*>(wei));
  if (bias) e.bias.set_data_handle(const_cast<float*>(bias));
  e.dst.set_data_handle(dst);
  dnnl_call(op, [&] {
    e.prim.execute(st.stream(), e.args);
    st.stream().wait();
  });
}

// Row-major [rows, cols], optionally read transposed: element (i, j) at i + j * rows.
memory::desc matrix(std::int64_t rows, std::int64_t cols, bool transposed = false,
                    memory::data_type type = kF32) {
  return transposed ? memory::desc({rows, cols}, type, memory::dims{1, rows})
                    : memory::desc({rows, cols}, type, memory::dims{cols, 1});
}

constexpr auto kBF16 = memory::data_type::bf16;

// db[j] (+)= sum_i dy[i, j] for dy[n, m] of f32 or bf16, rows added in order whatever the threads
// (so also in thread-invariant mode); vectorises over j.
template <class T>
void bias_gradient(const T* dy, float* db, std::int64_t n, std::int64_t m, bool accumulate) {
  if (!accumulate) {
    for (std::int64_t j = 0; j < m; ++j) db[j] = 0.0f;
  }
#pragma omp parallel for schedule(static) if (m >= 4096)
  for (std::int64_t j0 = 0; j0 < m; j0 += 256) {
    const std::int64_t j1 = j0 + 256 < m ? j0 + 256 : m;
    for (std::int64_t i = 0; i < n; ++i) {
      const T* row = dy + i * m;
      for (std::int64_t j = j0; j < j1; ++j) {
        if constexpr (std::is_same_v<T, float>) {
          db[j] += row[j];
        } else {
          db[j] += to_float(row[j]);
        }
      }
    }
  }
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
  if (db != nullptr) bias_gradient(dy, db, n, m, accumulate);
}

// ---- bf16 on the CPU's own bf16 instructions ----------------------------------------------------

// Note [Native bf16 GEMMs]
// ~~~~~~~~~~~~~~~~~~~~~~~~
// Where the CPU has AVX512_BF16 or AMX, the three products of a Linear layer under --precision
// bf16 run oneDNN's matmul on the bf16 operands themselves (f32 bias, output and accumulation,
// the sum post-op for gradient accumulation), and a Conv2d's three passes oneDNN's bf16
// convolutions (conv.cpp; f32 outputs), instead of widening them to f32 first (Note
// [Mixed-precision operands] in kernels/ops.h): the same products, summed in another order, at
// the bf16 instructions' speed. Thread-invariant mode keeps the widening path (its f32 kernels
// fix the order of the sums for every thread count). DPT_CPU_BF16=emulated forces the widening
// path for comparisons; fp16 always widens (oneDNN 2.6 has no fp16 matmul on the CPU).
bool native_bf16_gemm() {
  static const bool native = [] {
    const char* forced = std::getenv("DPT_CPU_BF16");
    if (forced != nullptr && std::string_view(forced) == "emulated") return false;
    const auto isa = static_cast<unsigned>(dnnl_get_effective_cpu_isa());
    const auto bf16 = static_cast<unsigned>(dnnl_cpu_isa_avx512_core_bf16);
    return (isa & bf16) == bf16;
  }();
  return native;
}

void linear_forward_bf16(const Context& ctx, const BFloat16* x, const BFloat16* w, const float* b,
                         float* y, std::int64_t n, std::int64_t k, std::int64_t m, bool relu) {
  CpuBackendState& st = state_of(ctx);
  const memory::desc bias_md = matrix(1, m);
  Matmul& e =
      cached_matmul(st, detail::str("linear_fwd_bf16:", n, ',', k, ',', m, ';', b != nullptr, relu),
                    "linear_forward", matrix(n, k, false, kBF16), matrix(k, m, true, kBF16),
                    b ? &bias_md : nullptr, matrix(n, m), relu, false);
  run(st, "linear_forward", e, x, w, b, y);
}

void linear_backward_data_bf16(const Context& ctx, const BFloat16* dy, const BFloat16* w, float* dx,
                               std::int64_t n, std::int64_t k, std::int64_t m) {
  // dx[n,k] = dy[n,m] * w[m,k]
  CpuBackendState& st = state_of(ctx);
  Matmul& e = cached_matmul(st, detail::str("linear_bwd_data_bf16:", n, ',', k, ',', m),
                            "linear_backward_data", matrix(n, m, false, kBF16),
                            matrix(m, k, false, kBF16), nullptr, matrix(n, k), false, false);
  run(st, "linear_backward_data", e, dy, w, nullptr, dx);
}

void linear_backward_weights_bf16(const Context& ctx, const BFloat16* x, const BFloat16* dy,
                                  float* dw, float* db, std::int64_t n, std::int64_t k,
                                  std::int64_t m, bool accumulate) {
  // dw[m,k] (+)= dy^T[m,n] * x[n,k], dy^T read from dy[n,m] with strides.
  CpuBackendState& st = state_of(ctx);
  Matmul& e =
      cached_matmul(st, detail::str("linear_bwd_weights_bf16:", n, ',', k, ',', m, ';', accumulate),
                    "linear_backward_weights", matrix(m, n, true, kBF16),
                    matrix(n, k, false, kBF16), nullptr, matrix(m, k), false, accumulate);
  run(st, "linear_backward_weights", e, dy, x, nullptr, dw);
  if (db != nullptr) bias_gradient(dy, db, n, m, accumulate);
}

}  // namespace dpt::kernels::cpu
