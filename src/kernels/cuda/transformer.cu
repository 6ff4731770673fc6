// SPDX-License-Identifier: MIT
// The transformer layers on the GPU, over the same math as the CPU (kernels/transformer_math.h):
// embedding, layer norm, GELU, add, and causal attention. Every sum runs in the CPU backend's
// order, so the embedding and layer-norm results and the residual add are bitwise the CPU's
// (built with --fmad=false: a*b+c is rounded twice, as on the CPU); GELU and the softmax call the
// device's expf, and attention's dot products run in index order where the CPU uses dnnl_sgemm,
// so those agree to float rounding. Attention's dropout mask is bitwise the CPU's.
// Attention here is one thread per row (and per column in the backward) of each (batch, head):
// simple and deterministic, not fast; a tiled or library kernel can replace it behind the same
// signature.
#include <cmath>
#include <cstdint>

#include "kernels/cuda/grid.cuh"
#include "kernels/cuda/kernels_cuda.h"
#include "kernels/cuda/launch.h"
#include "kernels/transformer_math.h"

namespace dpt::kernels::cuda {
namespace {

// ---- embedding -------------------------------------------------------------------------------

__global__ void embedding_forward_kernel(const std::int32_t* tokens, const float* wte,
                                         const float* wpe, float* y, std::int64_t rows,
                                         std::int64_t t, std::int64_t c) {
  const std::int64_t total = rows * c;
  for (std::int64_t e = grid_start(); e < total; e += grid_stride()) {
    const std::int64_t r = e / c, j = e - r * c;
    y[e] = wte[static_cast<std::int64_t>(tokens[r]) * c + j] + wpe[(r % t) * c + j];
  }
}

__global__ void fill_kernel(float* p, float value, std::int64_t n) {
  for (std::int64_t i = grid_start(); i < n; i += grid_stride()) p[i] = value;
}

// One thread per channel, rows in (b, t) order: the CPU's order for every element.
__global__ void embedding_backward_kernel(const std::int32_t* tokens, const float* dy,
                                          float* dwte, float* dwpe, std::int64_t rows,
                                          std::int64_t t, std::int64_t c) {
  for (std::int64_t j = grid_start(); j < c; j += grid_stride()) {
    for (std::int64_t r = 0; r < rows; ++r) {
      const float g = dy[r * c + j];
      dwte[static_cast<std::int64_t>(tokens[r]) * c + j] += g;
      dwpe[(r % t) * c + j] += g;
    }
  }
}

// ---- layer norm ------------------------------------------------------------------------------

__global__ void layer_norm_forward_kernel(const float* x, const float* gamma, const float* beta,
                                          float* y, float* mean, float* rstd, std::int64_t rows,
                                          std::int64_t c, float eps) {
  for (std::int64_t r = grid_start(); r < rows; r += grid_stride()) {
    layer_norm_row(x + r * c, gamma, beta, y + r * c, c, eps, mean + r, rstd + r);
  }
}

// dgamma, dbeta: one thread per channel, rows in order, in double (the CPU's loop).
__global__ void layer_norm_params_kernel(const float* x, const float* mean, const float* rstd,
                                         const float* dy, float* dgamma, float* dbeta,
                                         std::int64_t rows, std::int64_t c, bool accumulate) {
  for (std::int64_t j = grid_start(); j < c; j += grid_stride()) {
    double sum_gamma = 0.0, sum_beta = 0.0;
    for (std::int64_t r = 0; r < rows; ++r) {
      const float g = dy[r * c + j];
      sum_gamma += static_cast<double>(g) * layer_norm_xhat(x[r * c + j], mean[r], rstd[r]);
      sum_beta += static_cast<double>(g);
    }
    dgamma[j] = accumulate ? static_cast<float>(dgamma[j] + sum_gamma)
                           : static_cast<float>(sum_gamma);
    if (dbeta != nullptr) {
      dbeta[j] = accumulate ? static_cast<float>(dbeta[j] + sum_beta)
                            : static_cast<float>(sum_beta);
    }
  }
}

__global__ void layer_norm_backward_kernel(const float* x, const float* gamma, const float* mean,
                                           const float* rstd, const float* dy, float* dx,
                                           std::int64_t rows, std::int64_t c) {
  for (std::int64_t r = grid_start(); r < rows; r += grid_stride()) {
    layer_norm_backward_row(x + r * c, gamma, mean[r], rstd[r], dy + r * c, dx + r * c, c);
  }
}

// ---- GELU, add -------------------------------------------------------------------------------

__global__ void gelu_forward_kernel(const float* x, float* y, std::int64_t n) {
  for (std::int64_t i = grid_start(); i < n; i += grid_stride()) y[i] = gelu_tanh(x[i]);
}

__global__ void gelu_backward_kernel(const float* x, const float* dy, float* dx, std::int64_t n) {
  for (std::int64_t i = grid_start(); i < n; i += grid_stride()) dx[i] = gelu_tanh_grad(x[i], dy[i]);
}

__global__ void add_kernel(const float* a, const float* b, float* y, std::int64_t n) {
  for (std::int64_t i = grid_start(); i < n; i += grid_stride()) y[i] = a[i] + b[i];
}

// ---- causal attention ------------------------------------------------------------------------

// Offset of channel `part` * C + h * D of position `pos` of sample b in qkv (row stride 3C).
__device__ __forceinline__ std::int64_t qkv_at(const AttentionShape& s, std::int64_t b,
                                               std::int64_t pos, int part, std::int64_t h) {
  return (b * s.t + pos) * 3 * s.c + part * s.c + h * s.d;
}

// One thread per row (b, h, i): scores, softmax, dropout mask, y_i = sum_j p_ij m_ij v_j.
__global__ void attention_forward_kernel(AttentionShape s, const float* qkv, float* y, float* att,
                                         float* att_mask, float p, float keep_scale, float scale,
                                         DropoutKey key) {
  const std::int64_t rows = s.b * s.heads * s.t;
  for (std::int64_t row = grid_start(); row < rows; row += grid_stride()) {
    const std::int64_t pair = row / s.t, i = row - pair * s.t;
    const std::int64_t b = pair / s.heads, h = pair - b * s.heads;
    const float* q = qkv + qkv_at(s, b, i, 0, h);
    float* a = att + row * s.t;
    for (std::int64_t j = 0; j <= i; ++j) {
      const float* k = qkv + qkv_at(s, b, j, 1, h);
      float dot = 0.0f;
      for (std::int64_t d = 0; d < s.d; ++d) dot += q[d] * k[d];
      a[j] = dot;
    }
    causal_softmax_row(a, i, s.t, scale);
    const float* m = nullptr;
    if (p > 0.0f) {
      float* mask = att_mask + row * s.t;
      const std::int64_t first = h * s.t * s.t + i * s.t;
      dropout_mask_range(mask, first, first + s.t, p, keep_scale, key.seed, key.step, key.layer,
                         key.first_sample + b);
      m = mask;
    }
    float* out = y + (b * s.t + i) * s.c + h * s.d;
    for (std::int64_t d = 0; d < s.d; ++d) out[d] = 0.0f;
    for (std::int64_t j = 0; j <= i; ++j) {
      const float w = m != nullptr ? a[j] * m[j] : a[j];
      const float* v = qkv + qkv_at(s, b, j, 2, h);
      for (std::int64_t d = 0; d < s.d; ++d) out[d] += w * v[d];
    }
  }
}

// One thread per row (b, h, i): ds_i (into the scratch) and dq_i.
__global__ void attention_backward_rows_kernel(AttentionShape s, const float* qkv,
                                               const float* att, const float* att_mask,
                                               const float* dy, float* dqkv, float* ds,
                                               float scale) {
  const std::int64_t rows = s.b * s.heads * s.t;
  for (std::int64_t row = grid_start(); row < rows; row += grid_stride()) {
    const std::int64_t pair = row / s.t, i = row - pair * s.t;
    const std::int64_t b = pair / s.heads, h = pair - b * s.heads;
    const float* g = dy + (b * s.t + i) * s.c + h * s.d;
    float* d_row = ds + row * s.t;
    for (std::int64_t j = 0; j <= i; ++j) {
      const float* v = qkv + qkv_at(s, b, j, 2, h);
      float dot = 0.0f;
      for (std::int64_t d = 0; d < s.d; ++d) dot += g[d] * v[d];
      d_row[j] = att_mask != nullptr ? dot * att_mask[row * s.t + j] : dot;
    }
    causal_softmax_backward_row(att + row * s.t, d_row, i, s.t, scale);
    float* dq = dqkv + qkv_at(s, b, i, 0, h);
    for (std::int64_t d = 0; d < s.d; ++d) dq[d] = 0.0f;
    for (std::int64_t j = 0; j <= i; ++j) {
      const float* k = qkv + qkv_at(s, b, j, 1, h);
      for (std::int64_t d = 0; d < s.d; ++d) dq[d] += d_row[j] * k[d];
    }
  }
}

// One thread per column (b, h, j): dk_j = sum_{i >= j} ds_ij q_i, dv_j = sum_{i >= j} p_ij m_ij dy_i.
__global__ void attention_backward_columns_kernel(AttentionShape s, const float* qkv,
                                                  const float* att, const float* att_mask,
                                                  const float* dy, float* dqkv, const float* ds) {
  const std::int64_t columns = s.b * s.heads * s.t;
  for (std::int64_t col = grid_start(); col < columns; col += grid_stride()) {
    const std::int64_t pair = col / s.t, j = col - pair * s.t;
    const std::int64_t b = pair / s.heads, h = pair - b * s.heads;
    float* dk = dqkv + qkv_at(s, b, j, 1, h);
    float* dv = dqkv + qkv_at(s, b, j, 2, h);
    for (std::int64_t d = 0; d < s.d; ++d) {
      dk[d] = 0.0f;
      dv[d] = 0.0f;
    }
    for (std::int64_t i = j; i < s.t; ++i) {
      const std::int64_t e = (pair * s.t + i) * s.t + j;
      const float w = att_mask != nullptr ? att[e] * att_mask[e] : att[e];
      const float* q = qkv + qkv_at(s, b, i, 0, h);
      const float* g = dy + (b * s.t + i) * s.c + h * s.d;
      for (std::int64_t d = 0; d < s.d; ++d) {
        dk[d] += ds[e] * q[d];
        dv[d] += w * g[d];
      }
    }
  }
}

float attention_scale(const AttentionShape& s) {
  return static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.d)));  // as the CPU
}

}  // namespace

void embedding_forward(const Context& ctx, const std::int32_t* tokens, const float* wte,
                       const float* wpe, float* y, std::int64_t b, std::int64_t t,
                       std::int64_t c) {
  if (b * t * c == 0) return;
  embedding_forward_kernel<<<blocks_for(b * t * c), kThreads, 0, stream_of(ctx)>>>(
      tokens, wte, wpe, y, b * t, t, c);
  DPT_CUDA_CHECK_LAUNCH();
}

void embedding_backward(const Context& ctx, const std::int32_t* tokens, const float* dy,
                        float* dwte, float* dwpe, std::int64_t b, std::int64_t t, std::int64_t c,
                        std::int64_t v, bool accumulate_wte, bool accumulate_wpe) {
  const cudaStream_t stream = stream_of(ctx);
  if (!accumulate_wte && v * c > 0) {
    fill_kernel<<<blocks_for(v * c), kThreads, 0, stream>>>(dwte, 0.0f, v * c);
    DPT_CUDA_CHECK_LAUNCH();
  }
  if (!accumulate_wpe && t * c > 0) {
    fill_kernel<<<blocks_for(t * c), kThreads, 0, stream>>>(dwpe, 0.0f, t * c);
    DPT_CUDA_CHECK_LAUNCH();
  }
  if (b * t * c == 0) return;
  embedding_backward_kernel<<<blocks_for(c), kThreads, 0, stream>>>(tokens, dy, dwte, dwpe, b * t,
                                                                    t, c);
  DPT_CUDA_CHECK_LAUNCH();
}

void layer_norm_forward(const Context& ctx, const float* x, const float* gamma, const float* beta,
                        float* y, float* mean, float* rstd, std::int64_t rows, std::int64_t c,
                        float eps) {
  if (rows == 0) return;
  layer_norm_forward_kernel<<<blocks_for(rows), kThreads, 0, stream_of(ctx)>>>(
      x, gamma, beta, y, mean, rstd, rows, c, eps);
  DPT_CUDA_CHECK_LAUNCH();
}

void layer_norm_backward(const Context& ctx, const float* x, const float* gamma,
                         const float* mean, const float* rstd, const float* dy, float* dx,
                         float* dgamma, float* dbeta, std::int64_t rows, std::int64_t c,
                         bool accumulate) {
  const cudaStream_t stream = stream_of(ctx);
  layer_norm_params_kernel<<<blocks_for(c), kThreads, 0, stream>>>(x, mean, rstd, dy, dgamma,
                                                                   dbeta, rows, c, accumulate);
  DPT_CUDA_CHECK_LAUNCH();
  if (rows == 0) return;
  layer_norm_backward_kernel<<<blocks_for(rows), kThreads, 0, stream>>>(x, gamma, mean, rstd, dy,
                                                                        dx, rows, c);
  DPT_CUDA_CHECK_LAUNCH();
}

void gelu_forward(const Context& ctx, const float* x, float* y, std::int64_t n) {
  if (n == 0) return;
  gelu_forward_kernel<<<blocks_for(n), kThreads, 0, stream_of(ctx)>>>(x, y, n);
  DPT_CUDA_CHECK_LAUNCH();
}

void gelu_backward(const Context& ctx, const float* x, const float* dy, float* dx,
                   std::int64_t n) {
  if (n == 0) return;
  gelu_backward_kernel<<<blocks_for(n), kThreads, 0, stream_of(ctx)>>>(x, dy, dx, n);
  DPT_CUDA_CHECK_LAUNCH();
}

void add(const Context& ctx, const float* a, const float* b, float* y, std::int64_t n) {
  if (n == 0) return;
  add_kernel<<<blocks_for(n), kThreads, 0, stream_of(ctx)>>>(a, b, y, n);
  DPT_CUDA_CHECK_LAUNCH();
}

void attention_forward(const Context& ctx, const AttentionShape& s, const float* qkv, float* y,
                       float* att, float* att_mask, float p, const DropoutKey& key) {
  const std::int64_t rows = s.b * s.heads * s.t;
  if (rows == 0) return;
  const float keep_scale = p > 0.0f ? 1.0f / (1.0f - p) : 1.0f;  // as the CPU, on the host
  attention_forward_kernel<<<blocks_for(rows), kThreads, 0, stream_of(ctx)>>>(
      s, qkv, y, att, att_mask, p, keep_scale, attention_scale(s), key);
  DPT_CUDA_CHECK_LAUNCH();
}

void attention_backward(const Context& ctx, const AttentionShape& s, const float* qkv,
                        const float* att, const float* att_mask, const float* dy, float* dqkv,
                        float p) {
  const std::int64_t rows = s.b * s.heads * s.t;
  if (rows == 0) return;
  const cudaStream_t stream = stream_of(ctx);
  const float* mask = p > 0.0f ? att_mask : nullptr;
  // The scores' gradient [B, heads, T, T]: written by the row kernel, read by the column kernel.
  auto* ds = static_cast<float*>(
      scratch(ctx, static_cast<std::size_t>(rows * s.t) * sizeof(float)));
  attention_backward_rows_kernel<<<blocks_for(rows), kThreads, 0, stream>>>(
      s, qkv, att, mask, dy, dqkv, ds, attention_scale(s));
  DPT_CUDA_CHECK_LAUNCH();
  attention_backward_columns_kernel<<<blocks_for(rows), kThreads, 0, stream>>>(s, qkv, att, mask,
                                                                               dy, dqkv, ds);
  DPT_CUDA_CHECK_LAUNCH();
}

}  // namespace dpt::kernels::cuda
