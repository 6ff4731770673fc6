// SPDX-License-Identifier: MIT
// The transformer layers on the CPU: OpenMP loops over the math of kernels/transformer_math.h
// (embedding, layer norm, GELU, add) and causal attention on dnnl_sgemm per (batch, head).
// Every result is the same bit for bit for any thread count: reductions across rows (the
// embedding and layer-norm parameter gradients) run in row order per element, and each
// (batch, head) of attention is computed by one thread with a sequential GEMM.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/cpu/backend_state.h"
#include "kernels/cpu/invariant.h"
#include "kernels/cpu/kernels_cpu.h"
#include "kernels/cpu/simd_loops.h"
#include "kernels/transformer_math.h"
#include "runtime/tensor.h"

namespace dpt::kernels::cpu {
namespace {
// Below this many elements a parallel region costs more than it saves.
constexpr std::int64_t kParallelMin = 1 << 15;
// Channels per task of the gradients summed over rows (16 floats: one 64-byte line per row).
constexpr std::int64_t kChannelBlock = 16;
// Rows per causal GEMM block (Note [Causal GEMM blocks]).
constexpr std::int64_t kCausalBlock = 32;

// `omp simd`: the clamps and selects of exp_float are if-converted only when asked for.
DPT_SIMD_CLONES void gelu_forward_range(const float* x, float* y, std::int64_t n) {
#pragma omp simd
  for (std::int64_t i = 0; i < n; ++i) y[i] = gelu_tanh(x[i]);
}
DPT_SIMD_CLONES void gelu_backward_range(const float* x, const float* dy, float* dx,
                                         std::int64_t n) {
#pragma omp simd
  for (std::int64_t i = 0; i < n; ++i) dx[i] = gelu_tanh_grad(x[i], dy[i]);
}
DPT_SIMD_CLONES void add_range(const float* a, const float* b, float* y, std::int64_t n) {
#pragma omp simd
  for (std::int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}
}  // namespace

// ---- embedding -------------------------------------------------------------------------------

void embedding_forward(const std::int32_t* tokens, const float* wte, const float* wpe, float* y,
                       std::int64_t b, std::int64_t t, std::int64_t c) {
  const std::int64_t rows = b * t;
#pragma omp parallel for schedule(static) if (rows * c >= kParallelMin)
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* token_row = wte + static_cast<std::int64_t>(tokens[r]) * c;
    const float* position_row = wpe + (r % t) * c;
    float* out = y + r * c;
    for (std::int64_t j = 0; j < c; ++j) out[j] = token_row[j] + position_row[j];
  }
}

// Each task owns a block of channels and walks the rows in (b, t) order: every element of dwte
// and dwpe receives its terms in that order, whichever thread runs the block.
void embedding_backward(const std::int32_t* tokens, const float* dy, float* dwte, float* dwpe,
                        std::int64_t b, std::int64_t t, std::int64_t c, std::int64_t v,
                        bool accumulate_wte, bool accumulate_wpe) {
  const std::int64_t rows = b * t;
  if (!accumulate_wte) std::fill(dwte, dwte + v * c, 0.0f);
  if (!accumulate_wpe) std::fill(dwpe, dwpe + t * c, 0.0f);
  const std::int64_t blocks = (c + kChannelBlock - 1) / kChannelBlock;
#pragma omp parallel for schedule(static) if (rows * c >= kParallelMin)
  for (std::int64_t blk = 0; blk < blocks; ++blk) {
    const std::int64_t j0 = blk * kChannelBlock, j1 = std::min(c, j0 + kChannelBlock);
    for (std::int64_t r = 0; r < rows; ++r) {
      const float* g = dy + r * c;
      float* token_row = dwte + static_cast<std::int64_t>(tokens[r]) * c;
      float* position_row = dwpe + (r % t) * c;
      for (std::int64_t j = j0; j < j1; ++j) {
        token_row[j] += g[j];
        position_row[j] += g[j];
      }
    }
  }
}

// ---- layer norm ------------------------------------------------------------------------------

void layer_norm_forward(const float* x, const float* gamma, const float* beta, float* y,
                        float* mean, float* rstd, std::int64_t rows, std::int64_t c, float eps) {
#pragma omp parallel for schedule(static) if (rows * c >= kParallelMin)
  for (std::int64_t r = 0; r < rows; ++r) {
    layer_norm_row(x + r * c, gamma, beta, y + r * c, c, eps, mean + r, rstd + r);
  }
}

void layer_norm_backward(const float* x, const float* gamma, const float* mean, const float* rstd,
                         const float* dy, float* dx, float* dgamma, float* dbeta,
                         std::int64_t rows, std::int64_t c, bool accumulate) {
  // dgamma[j] = sum_r dy[r,j] * xhat[r,j], dbeta[j] = sum_r dy[r,j]: per block of channels, rows
  // in order, in double (rounded once onto the existing value).
  const std::int64_t blocks = (c + kChannelBlock - 1) / kChannelBlock;
#pragma omp parallel for schedule(static) if (rows * c >= kParallelMin)
  for (std::int64_t blk = 0; blk < blocks; ++blk) {
    const std::int64_t j0 = blk * kChannelBlock, j1 = std::min(c, j0 + kChannelBlock);
    double sum_gamma[kChannelBlock] = {}, sum_beta[kChannelBlock] = {};
    for (std::int64_t r = 0; r < rows; ++r) {
      const float* xr = x + r * c;
      const float* gr = dy + r * c;
      for (std::int64_t j = j0; j < j1; ++j) {
        sum_gamma[j - j0] += static_cast<double>(gr[j]) * layer_norm_xhat(xr[j], mean[r], rstd[r]);
        sum_beta[j - j0] += static_cast<double>(gr[j]);
      }
    }
    for (std::int64_t j = j0; j < j1; ++j) {
      dgamma[j] = accumulate ? static_cast<float>(dgamma[j] + sum_gamma[j - j0])
                             : static_cast<float>(sum_gamma[j - j0]);
      if (dbeta != nullptr) {
        dbeta[j] = accumulate ? static_cast<float>(dbeta[j] + sum_beta[j - j0])
                              : static_cast<float>(sum_beta[j - j0]);
      }
    }
  }
#pragma omp parallel for schedule(static) if (rows * c >= kParallelMin)
  for (std::int64_t r = 0; r < rows; ++r) {
    layer_norm_backward_row(x + r * c, gamma, mean[r], rstd[r], dy + r * c, dx + r * c, c);
  }
}

// ---- GELU, add -------------------------------------------------------------------------------

void gelu_forward(const float* x, float* y, std::int64_t n) {
  for_thread_ranges(n, kParallelMin, [&](std::int64_t begin, std::int64_t end) {
    gelu_forward_range(x + begin, y + begin, end - begin);
  });
}

void gelu_backward(const float* x, const float* dy, float* dx, std::int64_t n) {
  for_thread_ranges(n, kParallelMin, [&](std::int64_t begin, std::int64_t end) {
    gelu_backward_range(x + begin, dy + begin, dx + begin, end - begin);
  });
}

void add(const float* a, const float* b, float* y, std::int64_t n) {
  for_thread_ranges(n, kParallelMin, [&](std::int64_t begin, std::int64_t end) {
    add_range(a + begin, b + begin, y + begin, end - begin);
  });
}

// ---- causal attention ------------------------------------------------------------------------

// Note [Causal GEMM blocks]
// ~~~~~~~~~~~~~~~~~~~~~~~~~
// Each (batch, head) runs its products as dnnl_sgemm calls on the strided q, k, v inside qkv (row
// stride 3C) and on y / dy (row stride C), without copies. Row i of att is 0 past column i, so
// the products run over blocks of kCausalBlock rows, each only as wide (or as deep) as the
// causal part reaches: for [r0, r1), scores q[r0:r1] k[0:r1]^T and y[r0:r1] = att[r0:r1, 0:r1]
// v[0:r1]; in the backward dv[r0:r1] and dk[r0:r1] read rows [r0, T) only. Entries of a block
// past the diagonal that a product computes are overwritten by the row's softmax (forward and
// backward write 0 past the diagonal), so what is read past the diagonal is always 0. At T = 64
// this computes 3/4 of the full products; the block split is a function of T alone.
// A (batch, head) is computed by one thread (for_each_pair: OpenMP's thread count 1 inside, so
// dnnl_sgemm runs sequentially), hence the bits do not depend on the thread count.

namespace {

struct HeadView {
  const float* q;
  const float* k;
  const float* v;
  std::int64_t ld_qkv;  // 3C
};

HeadView head_of(const AttentionShape& s, const float* qkv, std::int64_t b, std::int64_t h) {
  const float* base = qkv + b * s.t * 3 * s.c + h * s.d;
  return {base, base + s.c, base + 2 * s.c, 3 * s.c};
}

// Threads for the (batch, head) pairs: one below kParallelMin multiply-adds of the products
// (where a parallel region costs more than it saves), else parallel_blocks' count.
int attention_workers(const Context& ctx, const AttentionShape& s) {
  const std::int64_t pairs = s.b * s.heads;
  return pairs * s.t * s.t * s.d < kParallelMin ? 1 : block_workers(ctx, pairs);
}

// body(pair, worker) for every (batch, head) pair, each run by one thread with OpenMP's thread
// count 1 (so dnnl_sgemm runs sequentially); worker < attention_workers(). Which thread runs a pair
// does not change its bits.
template <typename Body>
void for_each_pair(const Context& ctx, const AttentionShape& s, Body&& body) {
  const std::int64_t pairs = s.b * s.heads;
  if (attention_workers(ctx, s) > 1) return parallel_blocks(ctx, pairs, body);
  const OmpThreads one(1);
  for (std::int64_t pair = 0; pair < pairs; ++pair) body(pair, 0);
}

float attention_scale(const AttentionShape& s) {
  return static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.d)));
}

}  // namespace

void attention_forward(const Context& ctx, const AttentionShape& s, const float* qkv, float* y,
                       float* att, float* att_mask, float p, const DropoutKey& key) {
  const std::int64_t t = s.t, d = s.d, pairs = s.b * s.heads;
  if (pairs == 0 || t == 0) return;
  const float scale = attention_scale(s);
  const float keep_scale = p > 0.0f ? 1.0f / (1.0f - p) : 1.0f;
  // The dropped-out probabilities of one (batch, head), per worker (allocated once per call).
  Tensor scratch;
  if (p > 0.0f) scratch = Tensor::empty({attention_workers(ctx, s), t * t});
  for_each_pair(ctx, s, [&](std::int64_t pair, int worker) {
    const std::int64_t b = pair / s.heads, h = pair % s.heads;
    const HeadView hv = head_of(s, qkv, b, h);
    float* a = att + pair * t * t;
    for (std::int64_t r0 = 0; r0 < t; r0 += kCausalBlock) {
      const std::int64_t r1 = std::min(t, r0 + kCausalBlock);
      // a[r0:r1, 0:r1] = q[r0:r1] k[0:r1]^T
      sgemm("attention_forward", 'N', 'T', r1 - r0, r1, d, hv.q + r0 * hv.ld_qkv, hv.ld_qkv, hv.k,
            hv.ld_qkv, 0.0f, a + r0 * t, t);
      for (std::int64_t i = r0; i < r1; ++i) causal_softmax_row(a + i * t, i, t, scale);
    }
    const float* probs = a;
    if (p > 0.0f) {
      float* mask = att_mask + pair * t * t;
      dropout_mask_range(mask, h * t * t, (h + 1) * t * t, p, keep_scale, key.seed, key.step,
                         key.layer, key.first_sample + b);
      float* dropped = scratch.data<float>() + worker * t * t;
      for (std::int64_t e = 0; e < t * t; ++e) dropped[e] = a[e] * mask[e];
      probs = dropped;
    }
    float* out = y + b * t * s.c + h * d;
    for (std::int64_t r0 = 0; r0 < t; r0 += kCausalBlock) {
      const std::int64_t r1 = std::min(t, r0 + kCausalBlock);
      // y[r0:r1] = probs[r0:r1, 0:r1] v[0:r1]
      sgemm("attention_forward", 'N', 'N', r1 - r0, d, r1, probs + r0 * t, t, hv.v, hv.ld_qkv,
            0.0f, out + r0 * s.c, s.c);
    }
  });
}

void attention_backward(const Context& ctx, const AttentionShape& s, const float* qkv,
                        const float* att, const float* att_mask, const float* dy, float* dqkv,
                        float p) {
  const std::int64_t t = s.t, d = s.d, pairs = s.b * s.heads;
  if (pairs == 0 || t == 0) return;
  const float scale = attention_scale(s);
  // Per worker: the gradient of the probabilities (then of the scores), and with dropout the
  // dropped-out probabilities.
  const std::int64_t per_worker = (p > 0.0f ? 2 : 1) * t * t;
  Tensor scratch = Tensor::empty({attention_workers(ctx, s), per_worker});
  for_each_pair(ctx, s, [&](std::int64_t pair, int worker) {
    const std::int64_t b = pair / s.heads, h = pair % s.heads;
    const HeadView hv = head_of(s, qkv, b, h);
    float* dq = dqkv + b * t * 3 * s.c + h * d;  // the same layout as qkv
    float* dk = dq + s.c;
    float* dv = dq + 2 * s.c;
    const float* a = att + pair * t * t;
    const float* g = dy + b * t * s.c + h * d;
    float* dp = scratch.data<float>() + worker * per_worker;
    const float* probs = a;
    const float* mask = p > 0.0f ? att_mask + pair * t * t : nullptr;
    if (mask != nullptr) {
      float* dropped = dp + t * t;
      for (std::int64_t e = 0; e < t * t; ++e) dropped[e] = a[e] * mask[e];
      probs = dropped;
    }
    for (std::int64_t r0 = 0; r0 < t; r0 += kCausalBlock) {
      const std::int64_t r1 = std::min(t, r0 + kCausalBlock);
      // dv[r0:r1] = probs[r0:T, r0:r1]^T dy[r0:T]
      sgemm("attention_backward", 'T', 'N', r1 - r0, d, t - r0, probs + r0 * t + r0, t,
            g + r0 * s.c, s.c, 0.0f, dv + r0 * hv.ld_qkv, hv.ld_qkv);
      // dp[r0:r1, 0:r1] = dy[r0:r1] v[0:r1]^T, then through dropout and the softmax
      sgemm("attention_backward", 'N', 'T', r1 - r0, r1, d, g + r0 * s.c, s.c, hv.v, hv.ld_qkv,
            0.0f, dp + r0 * t, t);
      for (std::int64_t i = r0; i < r1; ++i) {
        float* row = dp + i * t;
        if (mask != nullptr) {
          for (std::int64_t j = 0; j <= i; ++j) row[j] *= mask[i * t + j];
        }
        causal_softmax_backward_row(a + i * t, row, i, t, scale);
      }
    }
    for (std::int64_t r0 = 0; r0 < t; r0 += kCausalBlock) {
      const std::int64_t r1 = std::min(t, r0 + kCausalBlock);
      // dq[r0:r1] = ds[r0:r1, 0:r1] k[0:r1];  dk[r0:r1] = ds[r0:T, r0:r1]^T q[r0:T]
      sgemm("attention_backward", 'N', 'N', r1 - r0, d, r1, dp + r0 * t, t, hv.k, hv.ld_qkv, 0.0f,
            dq + r0 * hv.ld_qkv, hv.ld_qkv);
      sgemm("attention_backward", 'T', 'N', r1 - r0, d, t - r0, dp + r0 * t + r0, t,
            hv.q + r0 * hv.ld_qkv, hv.ld_qkv, 0.0f, dk + r0 * hv.ld_qkv, hv.ld_qkv);
    }
  });
}

}  // namespace dpt::kernels::cpu
