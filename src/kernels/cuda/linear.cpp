// SPDX-License-Identifier: MIT
// Linear layer on cuBLASLt: forward with bias and ReLU fused as matmul epilogues, backward-data,
// and backward-weights with accumulation through beta = 1; the bias gradient is an own
// fixed-order kernel (bias.cu). Descriptors and the algorithm are chosen once per shape (and
// pointer alignment) and cached in the CudaBackendState.
//
// Note [Row-major tensors in column-major cuBLASLt]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// cuBLASLt's default order is column-major. A row-major [R, C] tensor with row stride C is, read
// column-major, the matrix [C, R] with ld = C: its transpose, at no cost. So every product is
// computed transposed, D^T = op(B)^T op(A)^T, on the same memory:
//   forward     y[N,M] = x[N,K] w[M,K]^T   ->  y^T[M,N] = w[M,K] . x^T[K,N]
//               A = w  stored [K,M] ld K, TRANSA = T;  B = x stored [K,N] ld K, TRANSB = N;
//               D = y^T [M,N] ld M. The bias is per row of D (M of them): exactly
//               CUBLASLT_EPILOGUE_BIAS's "bias vector length must match matrix D rows".
//   bwd data    dx[N,K] = dy[N,M] w[M,K]   ->  dx^T[K,N] = w^T[K,M] . dy^T[M,N]
//               A = w  stored [K,M] ld K, N;  B = dy stored [M,N] ld M, N;  D [K,N] ld K.
//   bwd weights dw[M,K] = dy^T[M,N] x[N,K] ->  dw^T[K,M] = x^T[K,N] . dy[N,M]
//               A = x  stored [K,N] ld K, N;  B = dy stored [M,N] ld M, TRANSB = T;  D [K,M] ld K.
//
// Note [cuBLASLt determinism]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~
// cuBLAS documents bitwise-reproducible results run to run on one GPU model with one stream, for
// a given algorithm. Here every call runs on the compute stream, the algorithm is picked once per
// shape with a fixed workspace budget and then reused, and the compute type is plain FP32
// (CUBLAS_COMPUTE_32F: no TF32, no emulation) unless TF32 was asked for (Note [Half and TF32
// GEMMs]). Split-K stays allowed only with reductions done in
// a separate pass over the workspace (REDUCTION_SCHEME_COMPUTE_TYPE / OUTPUT_TYPE), which sum the
// parts in a fixed order; the in-place scheme, which serialises the parts through counters in the
// output, is excluded as the one whose order we cannot see. Pointer alignment can change the
// algorithm, so it is part of the cache key: the same tensors (same offsets) give the same bits.
//
// Note [Half and TF32 GEMMs]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~
// Under --precision bf16/fp16 the operands A and B are bf16 or f16 and C, D and the bias stay f32,
// with CUBLAS_COMPUTE_32F: tensor-core products of half values accumulated in f32, which is the
// contract of Note [Mixed-precision operands] (the CPU emulation widens the same half values and
// sums in f32; only the order of the sums differs). Nothing is rounded to half on the way out, so
// the logits and weight gradients keep f32 sums. f32 operands use CUBLAS_COMPUTE_32F, or
// CUBLAS_COMPUTE_32F_FAST_TF32 when the context allows TF32 (--tf32): inputs rounded to 10-bit
// significands on tensor cores, f32 accumulation. Both stay deterministic under the rules above;
// the operand type and compute type are part of the cache key.
#include <cstdint>
#include <string>

#include "kernels/cuda/backend_state.h"
#include "kernels/cuda/kernels_cuda.h"
#include "kernels/cuda/launch.h"
#include "runtime/check.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/dtype.h"

namespace dpt::kernels::cuda {
namespace {

// The most workspace an algorithm may use (NVIDIA recommends 32 MiB on Hopper); fixed, so the
// choice of algorithm does not depend on what else ran before.
constexpr std::uint64_t kMatmulWorkspaceBytes = std::uint64_t{32} << 20;

// Largest power of two (at most 256) dividing the address: what cuBLASLt may assume about it.
std::uint32_t alignment_of(const void* p) {
  const auto address = reinterpret_cast<std::uintptr_t>(p);
  if (address == 0) return 256;
  const std::uintptr_t lowest_bit = address & (~address + 1);
  return lowest_bit >= 256 ? 256u : static_cast<std::uint32_t>(lowest_bit);
}

// The cuBLASLt element type of an operand format.
cudaDataType_t operand_type(DType format) {
  switch (format) {
    case DType::kF32:
      return CUDA_R_32F;
    case DType::kBF16:
      return CUDA_R_16BF;
    case DType::kF16:
      return CUDA_R_16F;
    default:
      break;
  }
  DPT_FAIL_KIND(ErrorKind::kInternal, "cuBLASLt operands must be f32, bf16 or f16, found ",
                to_string(format));
}

// See Note [Half and TF32 GEMMs].
cublasComputeType_t compute_type(const Context& ctx, DType format) {
  return format == DType::kF32 && ctx.allow_tf32() ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                   : CUBLAS_COMPUTE_32F;
}

// Column-major D[m,n] = op(A)[m,k] op(B)[k,n] + beta * D, then + bias[m] and relu when asked.
// A and B are `operands` (f32, bf16 or f16); D, C and the bias are f32.
struct Gemm {
  cublasOperation_t trans_a, trans_b;
  std::int64_t m, n, k, lda, ldb, ldd;
  cudaDataType_t operands;
  cublasComputeType_t compute;
  const void* a;
  const void* b;
  float* d;
  const float* bias;  // null: no bias
  bool relu;
  float beta;
};

struct MatmulPlan : CacheEntry {
  CublasLtMatmulDesc desc;
  CublasLtLayout a, b, d;  // d is also C (in place: C == D with the same layout)
  cublasLtMatmulAlgo_t algo{};
  std::size_t workspace_bytes = 0;
};

template <typename T>
void set_desc(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr, const T& value) {
  DPT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, attr, &value, sizeof(value)));
}

template <typename T>
void set_pref(cublasLtMatmulPreference_t pref, cublasLtMatmulPreferenceAttributes_t attr,
              const T& value) {
  DPT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &value, sizeof(value)));
}

std::unique_ptr<MatmulPlan> make_plan(CudaBackendState& st, const char* op, const Gemm& g) {
  auto plan = std::make_unique<MatmulPlan>();
  plan->desc = make_matmul_desc(g.compute, CUDA_R_32F);
  cublasLtMatmulDesc_t desc = plan->desc.get();
  set_desc(desc, CUBLASLT_MATMUL_DESC_TRANSA, static_cast<std::int32_t>(g.trans_a));
  set_desc(desc, CUBLASLT_MATMUL_DESC_TRANSB, static_cast<std::int32_t>(g.trans_b));
  const cublasLtEpilogue_t epilogue =
      g.bias != nullptr ? (g.relu ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_BIAS)
                        : (g.relu ? CUBLASLT_EPILOGUE_RELU : CUBLASLT_EPILOGUE_DEFAULT);
  set_desc(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, static_cast<std::uint32_t>(epilogue));
  if (g.bias != nullptr) {
    // The heuristic reads the pointer's alignment; run() sets the pointer of each call.
    set_desc(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, static_cast<const void*>(g.bias));
  }

  // Layouts describe the matrices as stored (before op): op = T swaps rows and columns.
  const bool ta = g.trans_a == CUBLAS_OP_T, tb = g.trans_b == CUBLAS_OP_T;
  const auto u = [](std::int64_t v) { return static_cast<std::uint64_t>(v); };
  plan->a = make_layout(g.operands, u(ta ? g.k : g.m), u(ta ? g.m : g.k), g.lda);
  plan->b = make_layout(g.operands, u(tb ? g.n : g.k), u(tb ? g.k : g.n), g.ldb);
  plan->d = make_layout(CUDA_R_32F, u(g.m), u(g.n), g.ldd);

  CublasLtPreference pref = make_preference();
  set_pref(pref.get(), CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, kMatmulWorkspaceBytes);
  if (st.deterministic()) {
    // See Note [cuBLASLt determinism].
    const std::uint32_t schemes = CUBLASLT_REDUCTION_SCHEME_NONE |
                                  CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE |
                                  CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE;
    set_pref(pref.get(), CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, schemes);
  }
  set_pref(pref.get(), CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, alignment_of(g.a));
  set_pref(pref.get(), CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, alignment_of(g.b));
  set_pref(pref.get(), CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, alignment_of(g.d));
  set_pref(pref.get(), CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, alignment_of(g.d));

  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  DPT_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(st.cublaslt(), desc, plan->a.get(), plan->b.get(),
                                                  plan->d.get(), plan->d.get(), pref.get(), 1,
                                                  &result, &found));
  DPT_CHECK_KIND(ErrorKind::kCuda, found > 0 && result.state == CUBLAS_STATUS_SUCCESS, op,
                 ": cuBLASLt has no algorithm for m=", g.m, " n=", g.n, " k=", g.k, " (epilogue ",
                 static_cast<int>(epilogue), ")");
  plan->algo = result.algo;
  plan->workspace_bytes = result.workspaceSize;
  return plan;
}

void run(const Context& ctx, const char* op, const Gemm& g) {
  CudaBackendState& st = state_of(ctx);
  const std::string key = detail::str(
      op, ':', static_cast<int>(g.trans_a), static_cast<int>(g.trans_b), ';', g.m, ',', g.n, ',',
      g.k, ';', g.lda, ',', g.ldb, ',', g.ldd, ';', g.bias != nullptr, g.relu, ';',
      alignment_of(g.a), ',', alignment_of(g.b), ',', alignment_of(g.d), ',', alignment_of(g.bias),
      ';', static_cast<int>(g.operands), ',', static_cast<int>(g.compute));
  MatmulPlan& plan = st.cached<MatmulPlan>(key, [&] { return make_plan(st, op, g); });
  if (g.bias != nullptr) {
    set_desc(plan.desc.get(), CUBLASLT_MATMUL_DESC_BIAS_POINTER, static_cast<const void*>(g.bias));
  }
  void* workspace = st.workspace(plan.workspace_bytes);
  const float alpha = 1.0f;
  DPT_CUBLAS_CHECK(cublasLtMatmul(st.cublaslt(), plan.desc.get(), &alpha, g.a, plan.a.get(), g.b,
                                  plan.b.get(), &g.beta, g.d, plan.d.get(), g.d, plan.d.get(),
                                  &plan.algo, workspace, plan.workspace_bytes, st.stream()));
}

void zero(cudaStream_t stream, float* p, std::int64_t count) {
  if (count > 0) {
    DPT_CUDA_CHECK(cudaMemsetAsync(p, 0, static_cast<std::size_t>(count) * sizeof(float), stream));
  }
}

}  // namespace

void linear_forward(const Context& ctx, DType operands, const void* x, const void* w,
                    const float* b, float* y, std::int64_t n, std::int64_t k, std::int64_t m,
                    bool relu) {
  if (n == 0 || m == 0) return;
  if (k == 0) {
    // An empty product (cuBLASLt rejects k = 0): y = act(0 + b).
    const cudaStream_t stream = stream_of(ctx);
    zero(stream, y, n * m);
    bias_act_nchw(stream, y, b, n, m, 1, relu);
    return;
  }
  // y^T[M,N] = w[M,K] . x^T[K,N]; see Note [Row-major tensors in column-major cuBLASLt].
  run(ctx, "linear_forward",
      Gemm{CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, k, k, m, operand_type(operands),
           compute_type(ctx, operands), w, x, y, b, relu, 0.0f});
}

void linear_backward_data(const Context& ctx, DType operands, const void* dy, const void* w,
                          float* dx, std::int64_t n, std::int64_t k, std::int64_t m) {
  if (n == 0 || k == 0) return;
  if (m == 0) {
    zero(stream_of(ctx), dx, n * k);
    return;
  }
  // dx^T[K,N] = w^T[K,M] . dy^T[M,N]
  run(ctx, "linear_backward_data",
      Gemm{CUBLAS_OP_N, CUBLAS_OP_N, k, n, m, k, m, k, operand_type(operands),
           compute_type(ctx, operands), w, dy, dx, nullptr, false, 0.0f});
}

void linear_backward_weights(const Context& ctx, DType operands, const void* x, const void* dy,
                             float* dw, float* db, std::int64_t n, std::int64_t k, std::int64_t m,
                             bool accumulate) {
  const cudaStream_t stream = stream_of(ctx);
  if (m > 0 && k > 0) {
    if (n == 0) {
      if (!accumulate) zero(stream, dw, m * k);
    } else {
      // dw^T[K,M] = x^T[K,N] . dy[N,M]; beta = 1 adds to the existing gradient.
      run(ctx, "linear_backward_weights",
          Gemm{CUBLAS_OP_N, CUBLAS_OP_T, k, m, n, k, m, k, operand_type(operands),
               compute_type(ctx, operands), x, dy, dw, nullptr, false, accumulate ? 1.0f : 0.0f});
    }
  }
  if (db != nullptr && m > 0) bias_grad_rows(stream, dy, operands, db, n, m, accumulate);
}

}  // namespace dpt::kernels::cuda
