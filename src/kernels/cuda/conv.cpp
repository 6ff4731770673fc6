// SPDX-License-Identifier: MIT
// Convolution on cuDNN's legacy convolution API (cudnn_cnn.h, still in cuDNN 9): forward,
// backward-data and backward-filter, each with its algorithm chosen once per shape from cuDNN's
// heuristics (cudnnGet*Algorithm_v7, no benchmarking) and cached with the descriptors in the
// CudaBackendState. Bias + ReLU after the forward and the bias gradient are own kernels (bias.cu).
//
// Note [cuDNN algorithm choice]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The heuristics list algorithms best first. We take the first that (1) reports
// CUDNN_STATUS_SUCCESS, (2) is CUDNN_DETERMINISTIC when the state asks for determinism (every
// forward algorithm is; backward-data ALGO_0 and backward-filter ALGO_0/ALGO_3 are not), (3) does
// not need Tensor Core math, and (4) whose workspace query succeeds with the descriptor's math
// type. The descriptor asks for CUDNN_FMA_MATH: with CUDNN_DEFAULT_MATH cuDNN may run FP32
// convolutions in TF32 on Ampere and later, 10-bit mantissas, far from the CPU reference. If none
// passes, the fallback is the implicit-GEMM algorithm of each pass, deterministic and supported for
// every NCHW FP32 shape. Where tensor cores are allowed (half operands, or fp32 under TF32), the
// search runs under CUDNN_TENSOR_OP_MATH, step (3) admits tensor-core entries (not
// CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION, which may turn fp32 into fp16), and the chosen entry's
// math type is set on the descriptor before its workspace query and before each call: one
// descriptor serves three passes that may choose differently, so each search starts from the
// plan's own math type again.
//
// Note [Half convolutions on cuDNN]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Under --precision bf16/fp16, x, w and dy are half and the convolutions run in cuDNN's
// PSEUDO_BFLOAT16 / PSEUDO_HALF configuration: half tensors, f32 compute type (products summed in
// f32) on tensor cores. The legacy API takes y (and dx, dw) in the inputs' format, so each result
// is rounded to the format once, into a temporary, and then widened into the f32 output (dw
// added to the gradient under accumulation); the bias and ReLU follow in f32. Next to the CPU,
// which keeps f32 results (Note [Mixed-precision operands]), that is one more rounding of each
// result, relative 2^-8 (bf16) or 2^-11 (f16), the rounding PyTorch's autocast makes on the same
// convolutions. dx loses nothing downstream: the previous layer rounds its output gradient to the
// same format anyway (ReLU masks and max-pooling routes commute with rounding). y keeps one
// rounding of its sum before the bias (relative to that sum, not to y), and the weight gradient
// one rounding of this micro-batch's part. Under fp16 that part must also fit fp16's range
// (65504) with the loss scale applied, where the CPU's f32 dw has no such limit: an overflow
// there is caught as any other and backs the scale off (Note [Loss scaling]).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kernels/cuda/backend_state.h"
#include "kernels/cuda/kernels_cuda.h"
#include "kernels/cuda/launch.h"
#include "runtime/check.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/dtype.h"
#include "runtime/tensor.h"

namespace dpt::kernels::cuda {
namespace {

struct Algo {
  int algo = 0;  // cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t
  std::size_t workspace_bytes = 0;
  cudnnMathType_t math = CUDNN_FMA_MATH;  // set on the descriptor before each call
};

struct ConvPlan : CacheEntry {
  CudnnTensorDesc x, y;
  CudnnFilterDesc w;
  CudnnConvDesc conv;
  DType operands = DType::kF32;
  bool tensor_cores = false;  // half operands, or f32 under TF32
  // The math type heuristic searches run under (Note [cuDNN algorithm choice]).
  cudnnMathType_t search_math() const {
    return tensor_cores ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH;
  }
  // Chosen on the first call of each pass.
  std::optional<Algo> fwd, bwd_data, bwd_filter;
};

cudnnDataType_t cudnn_type(DType format) {
  switch (format) {
    case DType::kF32:
      return CUDNN_DATA_FLOAT;
    case DType::kBF16:
      return CUDNN_DATA_BFLOAT16;
    case DType::kF16:
      return CUDNN_DATA_HALF;
    default:
      break;
  }
  DPT_FAIL_KIND(ErrorKind::kInternal, "cuDNN operands must be f32, bf16 or f16, found ",
                to_string(format));
}

int to_int(const char* op, const char* what, std::int64_t v) {
  DPT_CHECK(v >= 0 && v <= INT32_MAX, op, ": ", what, " = ", v, " exceeds cuDNN's int range");
  return static_cast<int>(v);
}

ConvPlan& plan_for(const Context& ctx, CudaBackendState& st, const char* op, const ConvShape& s,
                   DType operands) {
  // Tensor cores: always for half operands (their reason to exist), for f32 only under TF32.
  const bool tensor_cores = operands != DType::kF32 || ctx.allow_tf32();
  const std::string key = detail::str("conv:", s.n, ',', s.c, ',', s.h, ',', s.w, ';', s.o, ',',
                                      s.kh, ',', s.kw, ';', s.sh, ',', s.sw, ',', s.ph, ',', s.pw,
                                      ';', static_cast<int>(operands), ',', tensor_cores);
  return st.cached<ConvPlan>(key, [&] {
    auto plan = std::make_unique<ConvPlan>();
    plan->operands = operands;
    plan->tensor_cores = tensor_cores;
    const cudnnDataType_t type = cudnn_type(operands);
    plan->x = make_tensor_desc();
    plan->y = make_tensor_desc();
    plan->w = make_filter_desc();
    plan->conv = make_conv_desc();
    DPT_CUDNN_CHECK(cudnnSetTensor4dDescriptor(plan->x.get(), CUDNN_TENSOR_NCHW, type,
                                               to_int(op, "N", s.n), to_int(op, "C", s.c),
                                               to_int(op, "H", s.h), to_int(op, "W", s.w)));
    DPT_CUDNN_CHECK(cudnnSetTensor4dDescriptor(plan->y.get(), CUDNN_TENSOR_NCHW, type,
                                               to_int(op, "N", s.n), to_int(op, "O", s.o),
                                               to_int(op, "OH", s.oh), to_int(op, "OW", s.ow)));
    DPT_CUDNN_CHECK(cudnnSetFilter4dDescriptor(plan->w.get(), type, CUDNN_TENSOR_NCHW,
                                               to_int(op, "O", s.o), to_int(op, "C", s.c),
                                               to_int(op, "KH", s.kh), to_int(op, "KW", s.kw)));
    // Cross-correlation (no kernel flip), as oneDNN and PyTorch compute "convolution"; the
    // compute type is f32 for every operand format (PSEUDO_HALF / PSEUDO_BFLOAT16 for half).
    DPT_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
        plan->conv.get(), to_int(op, "pad_h", s.ph), to_int(op, "pad_w", s.pw),
        to_int(op, "stride_h", s.sh), to_int(op, "stride_w", s.sw), 1, 1, CUDNN_CROSS_CORRELATION,
        CUDNN_DATA_FLOAT));
    // cuDNN computes the output size itself; it must agree with ours.
    int dims[4] = {};
    DPT_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(
        plan->conv.get(), plan->x.get(), plan->w.get(), &dims[0], &dims[1], &dims[2], &dims[3]));
    DPT_CHECK_KIND(ErrorKind::kInternal,
                   dims[0] == s.n && dims[1] == s.o && dims[2] == s.oh && dims[3] == s.ow, op,
                   ": cuDNN's output shape [", dims[0], ",", dims[1], ",", dims[2], ",", dims[3],
                   "] differs from [", s.n, ",", s.o, ",", s.oh, ",", s.ow, "]");
    return plan;
  });
}

bool tensor_core_math(cudnnMathType_t m) {
  return m == CUDNN_TENSOR_OP_MATH || m == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
}

// Algorithms wanting more workspace than this (FFT variants can ask for gigabytes) are passed
// over: the next one in the list is usually close in speed.
constexpr std::size_t kMaxConvWorkspaceBytes = std::size_t{512} << 20;

// Note [cuDNN algorithm choice]: the first usable entry of `perf`, else `fallback`.
// workspace(algo, &bytes) queries the workspace size and returns the cuDNN status.
template <typename Perf, typename AlgoT, typename Workspace>
Algo choose(bool deterministic, const ConvPlan& p, const std::vector<Perf>& perf, AlgoT fallback,
            Workspace&& workspace) {
  for (const Perf& candidate : perf) {
    if (candidate.status != CUDNN_STATUS_SUCCESS) continue;
    if (deterministic && candidate.determinism != CUDNN_DETERMINISTIC) continue;
    if (!p.tensor_cores && tensor_core_math(candidate.mathType)) continue;
    // ALLOW_CONVERSION may run fp32 data in fp16 (11-bit significands, fp16's range): not TF32.
    if (candidate.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) continue;
    // Without tensor cores the descriptor stays at CUDNN_FMA_MATH whatever the entry says:
    // CUDNN_DEFAULT_MATH would let cuDNN run fp32 in TF32 on Ampere and later.
    const cudnnMathType_t math = p.tensor_cores ? candidate.mathType : CUDNN_FMA_MATH;
    DPT_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv.get(), math));
    std::size_t bytes = 0;
    if (workspace(candidate.algo, &bytes) != CUDNN_STATUS_SUCCESS) continue;
    if (bytes > kMaxConvWorkspaceBytes) continue;
    return Algo{static_cast<int>(candidate.algo), bytes, math};
  }
  DPT_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv.get(), p.search_math()));
  std::size_t bytes = 0;
  DPT_CUDNN_CHECK(workspace(fallback, &bytes));
  return Algo{static_cast<int>(fallback), bytes, p.search_math()};
}

// The plan's own math type on the shared descriptor, before a heuristic search: the previous pass
// left its chosen entry's there, and cuDNN lists tensor-core algorithms only under tensor-op math
// (so each pass's choice would depend on which pass ran first).
void reset_math(const ConvPlan& p) {
  DPT_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv.get(), p.search_math()));
}

// Sets the chosen algorithm's math type on the shared descriptor; returns the algorithm.
const Algo& prepare(const ConvPlan& p, const Algo& algo) {
  DPT_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv.get(), algo.math));
  return algo;
}

const Algo& forward_algo(CudaBackendState& st, ConvPlan& p) {
  if (!p.fwd) {
    cudnnHandle_t h = st.cudnn();
    int max_count = 0;
    DPT_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &max_count));
    std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(static_cast<std::size_t>(max_count));
    int returned = 0;
    reset_math(p);  // the search sees the plan's math type, not the last pass's choice
    DPT_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(
        h, p.x.get(), p.w.get(), p.conv.get(), p.y.get(), max_count, &returned, perf.data()));
    perf.resize(static_cast<std::size_t>(returned));
    p.fwd = choose(st.deterministic(), p, perf, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                   [&](cudnnConvolutionFwdAlgo_t a, std::size_t* bytes) {
                     return cudnnGetConvolutionForwardWorkspaceSize(
                         h, p.x.get(), p.w.get(), p.conv.get(), p.y.get(), a, bytes);
                   });
  }
  return *p.fwd;
}

const Algo& backward_data_algo(CudaBackendState& st, ConvPlan& p) {
  if (!p.bwd_data) {
    cudnnHandle_t h = st.cudnn();
    int max_count = 0;
    DPT_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &max_count));
    std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perf(static_cast<std::size_t>(max_count));
    int returned = 0;
    reset_math(p);  // the search sees the plan's math type, not the last pass's choice
    DPT_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
        h, p.w.get(), p.y.get(), p.conv.get(), p.x.get(), max_count, &returned, perf.data()));
    perf.resize(static_cast<std::size_t>(returned));
    p.bwd_data = choose(st.deterministic(), p, perf, CUDNN_CONVOLUTION_BWD_DATA_ALGO_1,
                        [&](cudnnConvolutionBwdDataAlgo_t a, std::size_t* bytes) {
                          return cudnnGetConvolutionBackwardDataWorkspaceSize(
                              h, p.w.get(), p.y.get(), p.conv.get(), p.x.get(), a, bytes);
                        });
  }
  return *p.bwd_data;
}

const Algo& backward_filter_algo(CudaBackendState& st, ConvPlan& p) {
  if (!p.bwd_filter) {
    cudnnHandle_t h = st.cudnn();
    int max_count = 0;
    DPT_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &max_count));
    std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perf(static_cast<std::size_t>(max_count));
    int returned = 0;
    reset_math(p);  // the search sees the plan's math type, not the last pass's choice
    DPT_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
        h, p.x.get(), p.y.get(), p.conv.get(), p.w.get(), max_count, &returned, perf.data()));
    perf.resize(static_cast<std::size_t>(returned));
    p.bwd_filter = choose(st.deterministic(), p, perf, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1,
                          [&](cudnnConvolutionBwdFilterAlgo_t a, std::size_t* bytes) {
                            return cudnnGetConvolutionBackwardFilterWorkspaceSize(
                                h, p.x.get(), p.y.get(), p.conv.get(), p.w.get(), a, bytes);
                          });
  }
  return *p.bwd_filter;
}

// Where a pass writes its result: the f32 output itself, or, for half operands (Note [Half
// convolutions on cuDNN]), a temporary in their format that finish() widens into the output.
class ConvResult {
 public:
  ConvResult(const CudaBackendState& st, DType operands, float* out, std::int64_t count)
      : operands_(operands), out_(out), count_(count) {
    if (operands != DType::kF32) {
      rounded_ = Tensor::empty({count}, operands, Device::cuda(st.device()));
    }
  }
  void* data() const { return rounded_.defined() ? rounded_.raw_data() : out_; }
  // The library's beta: 1 adds to the output (accumulation), possible only when written directly.
  float beta(bool accumulate) const { return accumulate && !rounded_.defined() ? 1.0f : 0.0f; }
  void finish(const Context& ctx, bool accumulate) const {
    if (rounded_.defined()) {
      widen_into(ctx, rounded_.raw_data(), operands_, out_, count_, accumulate);
    }
  }

 private:
  DType operands_;
  float* out_;
  std::int64_t count_;
  Tensor rounded_;
};

}  // namespace

void conv2d_forward(const Context& ctx, const ConvShape& s, DType operands, const void* x,
                    const void* w, const float* b, float* y, bool relu) {
  constexpr const char* op = "conv2d_forward";
  if (s.n == 0) return;  // no images: nothing to write (cuDNN rejects empty tensors)
  CudaBackendState& st = state_of(ctx);
  ConvPlan& p = plan_for(ctx, st, op, s, operands);
  const Algo& algo = prepare(p, forward_algo(st, p));
  void* workspace = st.workspace(algo.workspace_bytes);
  const ConvResult result(st, operands, y, s.n * s.o * s.oh * s.ow);
  const float alpha = 1.0f, beta = result.beta(false);
  DPT_CUDNN_CHECK(
      cudnnConvolutionForward(st.cudnn(), &alpha, p.x.get(), x, p.w.get(), w, p.conv.get(),
                              static_cast<cudnnConvolutionFwdAlgo_t>(algo.algo), workspace,
                              algo.workspace_bytes, &beta, p.y.get(), result.data()));
  result.finish(ctx, false);
  if (b != nullptr || relu) bias_act_nchw(st.stream(), y, b, s.n, s.o, s.oh * s.ow, relu);
}

void conv2d_backward_data(const Context& ctx, const ConvShape& s, DType operands, const void* dy,
                          const void* w, float* dx) {
  constexpr const char* op = "conv2d_backward_data";
  if (s.n == 0) return;
  CudaBackendState& st = state_of(ctx);
  ConvPlan& p = plan_for(ctx, st, op, s, operands);
  const Algo& algo = prepare(p, backward_data_algo(st, p));
  void* workspace = st.workspace(algo.workspace_bytes);
  const ConvResult result(st, operands, dx, s.n * s.c * s.h * s.w);
  const float alpha = 1.0f, beta = result.beta(false);
  DPT_CUDNN_CHECK(
      cudnnConvolutionBackwardData(st.cudnn(), &alpha, p.w.get(), w, p.y.get(), dy, p.conv.get(),
                                   static_cast<cudnnConvolutionBwdDataAlgo_t>(algo.algo), workspace,
                                   algo.workspace_bytes, &beta, p.x.get(), result.data()));
  result.finish(ctx, false);
}

void conv2d_backward_weights(const Context& ctx, const ConvShape& s, DType operands, const void* x,
                             const void* dy, float* dw, float* db, bool accumulate) {
  constexpr const char* op = "conv2d_backward_weights";
  CudaBackendState& st = state_of(ctx);
  const std::int64_t count = s.o * s.c * s.kh * s.kw;
  if (s.n == 0) {
    // An empty batch has zero gradient: nothing to add, or zeros to write.
    if (!accumulate) {
      DPT_CUDA_CHECK(
          cudaMemsetAsync(dw, 0, static_cast<std::size_t>(count) * sizeof(float), st.stream()));
    }
  } else {
    ConvPlan& p = plan_for(ctx, st, op, s, operands);
    const Algo& algo = prepare(p, backward_filter_algo(st, p));
    void* workspace = st.workspace(algo.workspace_bytes);
    // Gradient accumulation over micro-batches: f32 blends into the existing dw (beta = 1); a
    // half gradient of this batch is added as finish() widens it.
    const ConvResult result(st, operands, dw, count);
    const float alpha = 1.0f, beta = result.beta(accumulate);
    DPT_CUDNN_CHECK(cudnnConvolutionBackwardFilter(
        st.cudnn(), &alpha, p.x.get(), x, p.y.get(), dy, p.conv.get(),
        static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo.algo), workspace, algo.workspace_bytes,
        &beta, p.w.get(), result.data()));
    result.finish(ctx, accumulate);
  }
  if (db != nullptr) {
    bias_grad_nchw(st.stream(), dy, operands, db, s.n, s.o, s.oh * s.ow, accumulate);
  }
}

}  // namespace dpt::kernels::cuda
