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
// every NCHW FP32 shape.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kernels/cuda/backend_state.h"
#include "kernels/cuda/kernels_cuda.h"
#include "kernels/cuda/launch.h"
#include "runtime/check.h"
#include "runtime/cuda/cuda_check.h"

namespace dpt::kernels::cuda {
namespace {

struct Algo {
  int algo = 0;  // cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t
  std::size_t workspace_bytes = 0;
};

struct ConvPlan : CacheEntry {
  CudnnTensorDesc x, y;
  CudnnFilterDesc w;
  CudnnConvDesc conv;
  // Chosen on the first call of each pass.
  std::optional<Algo> fwd, bwd_data, bwd_filter;  // chosen on first use
};

int to_int(const char* op, const char* what, std::int64_t v) {
  DPT_CHECK(v >= 0 && v <= INT32_MAX, op, ": ", what, " = ", v, " exceeds cuDNN's int range");
  return static_cast<int>(v);
}

ConvPlan& plan_for(CudaBackendState& st, const char* op, const ConvShape& s) {
  const std::string key = detail::str("conv:", s.n, ',', s.c, ',', s.h, ',', s.w, ';', s.o, ',',
                                      s.kh, ',', s.kw, ';', s.sh, ',', s.sw, ',', s.ph, ',', s.pw);
  return st.cached<ConvPlan>(key, [&] {
    auto plan = std::make_unique<ConvPlan>();
    plan->x = make_tensor_desc();
    plan->y = make_tensor_desc();
    plan->w = make_filter_desc();
    plan->conv = make_conv_desc();
    DPT_CUDNN_CHECK(cudnnSetTensor4dDescriptor(plan->x.get(), CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT,
                                               to_int(op, "N", s.n), to_int(op, "C", s.c),
                                               to_int(op, "H", s.h), to_int(op, "W", s.w)));
    DPT_CUDNN_CHECK(cudnnSetTensor4dDescriptor(plan->y.get(), CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT,
                                               to_int(op, "N", s.n), to_int(op, "O", s.o),
                                               to_int(op, "OH", s.oh), to_int(op, "OW", s.ow)));
    DPT_CUDNN_CHECK(cudnnSetFilter4dDescriptor(plan->w.get(), CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW,
                                               to_int(op, "O", s.o), to_int(op, "C", s.c),
                                               to_int(op, "KH", s.kh), to_int(op, "KW", s.kw)));
    // Cross-correlation (no kernel flip), as oneDNN and PyTorch compute "convolution".
    DPT_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
        plan->conv.get(), to_int(op, "pad_h", s.ph), to_int(op, "pad_w", s.pw),
        to_int(op, "stride_h", s.sh), to_int(op, "stride_w", s.sw), 1, 1, CUDNN_CROSS_CORRELATION,
        CUDNN_DATA_FLOAT));
    DPT_CUDNN_CHECK(cudnnSetConvolutionMathType(plan->conv.get(), CUDNN_FMA_MATH));
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
Algo choose(bool deterministic, const std::vector<Perf>& perf, AlgoT fallback,
            Workspace&& workspace) {
  for (const Perf& p : perf) {
    if (p.status != CUDNN_STATUS_SUCCESS) continue;
    if (deterministic && p.determinism != CUDNN_DETERMINISTIC) continue;
    if (tensor_core_math(p.mathType)) continue;
    std::size_t bytes = 0;
    if (workspace(p.algo, &bytes) != CUDNN_STATUS_SUCCESS) continue;
    if (bytes > kMaxConvWorkspaceBytes) continue;
    return Algo{static_cast<int>(p.algo), bytes};
  }
  std::size_t bytes = 0;
  DPT_CUDNN_CHECK(workspace(fallback, &bytes));
  return Algo{static_cast<int>(fallback), bytes};
}

const Algo& forward_algo(CudaBackendState& st, ConvPlan& p) {
  if (!p.fwd) {
    cudnnHandle_t h = st.cudnn();
    int max_count = 0;
    DPT_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &max_count));
    std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(static_cast<std::size_t>(max_count));
    int returned = 0;
    DPT_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(
        h, p.x.get(), p.w.get(), p.conv.get(), p.y.get(), max_count, &returned, perf.data()));
    perf.resize(static_cast<std::size_t>(returned));
    p.fwd = choose(st.deterministic(), perf, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
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
    DPT_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
        h, p.w.get(), p.y.get(), p.conv.get(), p.x.get(), max_count, &returned, perf.data()));
    perf.resize(static_cast<std::size_t>(returned));
    p.bwd_data = choose(st.deterministic(), perf, CUDNN_CONVOLUTION_BWD_DATA_ALGO_1,
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
    DPT_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
        h, p.x.get(), p.y.get(), p.conv.get(), p.w.get(), max_count, &returned, perf.data()));
    perf.resize(static_cast<std::size_t>(returned));
    p.bwd_filter = choose(st.deterministic(), perf, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1,
                          [&](cudnnConvolutionBwdFilterAlgo_t a, std::size_t* bytes) {
                            return cudnnGetConvolutionBackwardFilterWorkspaceSize(
                                h, p.x.get(), p.y.get(), p.conv.get(), p.w.get(), a, bytes);
                          });
  }
  return *p.bwd_filter;
}

}  // namespace

void conv2d_forward(const Context& ctx, const ConvShape& s, const float* x, const float* w,
                    const float* b, float* y, bool relu) {
  constexpr const char* op = "conv2d_forward";
  if (s.n == 0) return;  // no images: nothing to write (cuDNN rejects empty tensors)
  CudaBackendState& st = state_of(ctx);
  ConvPlan& p = plan_for(st, op, s);
  const Algo& algo = forward_algo(st, p);
  void* workspace = st.workspace(algo.workspace_bytes);
  const float alpha = 1.0f, beta = 0.0f;
  DPT_CUDNN_CHECK(cudnnConvolutionForward(st.cudnn(), &alpha, p.x.get(), x, p.w.get(), w,
                                          p.conv.get(),
                                          static_cast<cudnnConvolutionFwdAlgo_t>(algo.algo),
                                          workspace, algo.workspace_bytes, &beta, p.y.get(), y));
  if (b != nullptr || relu) bias_act_nchw(st.stream(), y, b, s.n, s.o, s.oh * s.ow, relu);
}

void conv2d_backward_data(const Context& ctx, const ConvShape& s, const float* dy, const float* w,
                          float* dx) {
  constexpr const char* op = "conv2d_backward_data";
  if (s.n == 0) return;
  CudaBackendState& st = state_of(ctx);
  ConvPlan& p = plan_for(st, op, s);
  const Algo& algo = backward_data_algo(st, p);
  void* workspace = st.workspace(algo.workspace_bytes);
  const float alpha = 1.0f, beta = 0.0f;
  DPT_CUDNN_CHECK(
      cudnnConvolutionBackwardData(st.cudnn(), &alpha, p.w.get(), w, p.y.get(), dy, p.conv.get(),
                                   static_cast<cudnnConvolutionBwdDataAlgo_t>(algo.algo), workspace,
                                   algo.workspace_bytes, &beta, p.x.get(), dx));
}

void conv2d_backward_weights(const Context& ctx, const ConvShape& s, const float* x,
                             const float* dy, float* dw, float* db, bool accumulate) {
  constexpr const char* op = "conv2d_backward_weights";
  CudaBackendState& st = state_of(ctx);
  if (s.n == 0) {
    // An empty batch has zero gradient: nothing to add, or zeros to write.
    if (!accumulate) {
      DPT_CUDA_CHECK(cudaMemsetAsync(
          dw, 0, static_cast<std::size_t>(s.o * s.c * s.kh * s.kw) * sizeof(float), st.stream()));
    }
  } else {
    ConvPlan& p = plan_for(st, op, s);
    const Algo& algo = backward_filter_algo(st, p);
    void* workspace = st.workspace(algo.workspace_bytes);
    // beta = 1 blends into the existing dw: gradient accumulation over micro-batches.
    const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    DPT_CUDNN_CHECK(cudnnConvolutionBackwardFilter(
        st.cudnn(), &alpha, p.x.get(), x, p.y.get(), dy, p.conv.get(),
        static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo.algo), workspace, algo.workspace_bytes,
        &beta, p.w.get(), dw));
  }
  if (db != nullptr) bias_grad_nchw(st.stream(), dy, db, s.n, s.o, s.oh * s.ow, accumulate);
}

}  // namespace dpt::kernels::cuda
