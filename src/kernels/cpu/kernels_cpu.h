// SPDX-License-Identifier: MIT
// dpt::kernels::cpu: the CPU backend behind dispatch.cpp. Inputs are already validated; functions
// take raw pointers and sizes in elements. oneDNN-backed ops also take the Context for its cache.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/ops.h"
#include "kernels/shapes.h"

namespace dpt::kernels::cpu {

// ---- oneDNN: dense and convolution --------------------------------------------------------
void linear_forward(const Context& ctx, const float* x, const float* w, const float* b, float* y,
                    std::int64_t n, std::int64_t k, std::int64_t m, bool relu);
void linear_backward_data(const Context& ctx, const float* dy, const float* w, float* dx,
                          std::int64_t n, std::int64_t k, std::int64_t m);
void linear_backward_weights(const Context& ctx, const float* x, const float* dy, float* dw,
                             float* db, std::int64_t n, std::int64_t k, std::int64_t m,
                             bool accumulate);
// conv.cpp: the three convolution passes on bf16 inputs (f32 outputs), where native_bf16_gemm().
void conv2d_forward_bf16(const Context& ctx, const ConvShape& s, const BFloat16* x,
                         const BFloat16* w, const float* b, float* y, bool relu);
void conv2d_backward_data_bf16(const Context& ctx, const ConvShape& s, const BFloat16* dy,
                               const BFloat16* w, float* dx);
void conv2d_backward_weights_bf16(const Context& ctx, const ConvShape& s, const BFloat16* x,
                                  const BFloat16* dy, float* dw, float* db, bool accumulate);
// linear.cpp, Note [Native bf16 GEMMs]: true where the CPU multiplies bf16 natively (and
// DPT_CPU_BF16 is not "emulated"); then the three products on bf16 operands.
bool native_bf16_gemm();
void linear_forward_bf16(const Context& ctx, const BFloat16* x, const BFloat16* w, const float* b,
                         float* y, std::int64_t n, std::int64_t k, std::int64_t m, bool relu);
void linear_backward_data_bf16(const Context& ctx, const BFloat16* dy, const BFloat16* w, float* dx,
                               std::int64_t n, std::int64_t k, std::int64_t m);
void linear_backward_weights_bf16(const Context& ctx, const BFloat16* x, const BFloat16* dy,
                                  float* dw, float* db, std::int64_t n, std::int64_t k,
                                  std::int64_t m, bool accumulate);

// Samples per group of the default-mode convolutions (Note [Convolution sample groups]).
std::int64_t conv_sample_group(const ConvShape& s);
void conv2d_forward(const Context& ctx, const ConvShape& s, const float* x, const float* w,
                    const float* b, float* y, bool relu);
void conv2d_backward_data(const Context& ctx, const ConvShape& s, const float* dy, const float* w,
                          float* dx);
void conv2d_backward_weights(const Context& ctx, const ConvShape& s, const float* x,
                             const float* dy, float* dw, float* db, bool accumulate);

// Bytes of the argmax workspace the forward writes and the backward reads (one per output).
std::size_t max_pool2d_workspace_bytes(const PoolShape& s);
void max_pool2d_forward(const PoolShape& s, const float* x, float* y, std::uint8_t* workspace);
void max_pool2d_backward(const PoolShape& s, const float* dy, const std::uint8_t* workspace,
                         float* dx);

// ---- OpenMP loops (pooling; elementwise_math.h / optim_math.h) -------------------------------------
void relu_forward(const float* x, float* y, std::int64_t n);
void relu_backward(const float* y, const float* dy, float* dx, std::int64_t n);
// x holds `samples` rows of `per_sample` elements; row s is global sample key.first_sample + s.
void dropout_forward(const float* x, float* y, float* mask, std::int64_t samples,
                     std::int64_t per_sample, float p, const DropoutKey& key);
void dropout_backward(const float* dy, const float* mask, float* dx, std::int64_t n);
void scale(float* y, float alpha, std::int64_t n);
// cast.cpp: format is kBF16 or kF16 (Note [Half-precision conversions] in runtime/dtype.h).
void float_to_half(const float* x, void* y, DType format, std::int64_t n);
void half_to_float(const void* x, DType format, float* y, std::int64_t n);
void round_to_format(const float* x, float* y, DType format, std::int64_t n);
void axpy(float alpha, const float* x, float* y, std::int64_t n);
double sum_squares(const float* x, std::int64_t n);
// Each chunk's sum of squares (kSumSquaresChunk elements; the last may be shorter) into out.
void sum_squares_chunks(const float* x, std::int64_t n, double* out);
// integrity_math.h: the first index of a NaN or Inf in x[0, n), or n; the hash of x's bits.
std::int64_t first_nonfinite(const float* x, std::int64_t n);
// The same on the calling thread only.
std::int64_t first_nonfinite_serial(const float* x, std::int64_t n);
std::uint64_t hash_bits(const float* x, std::int64_t n);

LossResult softmax_cross_entropy(const float* logits, const std::int32_t* labels, float* dlogits,
                                 std::int64_t n, std::int64_t classes);
void softmax_cross_entropy_rows(const float* logits, const std::int32_t* labels, float* dlogits,
                                std::int64_t n, std::int64_t classes, double* row_loss,
                                std::int32_t* row_hit);

// ---- transformer layers (transformer.cpp; transformer_math.h) ----------------------------------
// tokens [b, t] already checked to lie in [0, V); wpe has at least t rows.
void embedding_forward(const std::int32_t* tokens, const float* wte, const float* wpe, float* y,
                       std::int64_t b, std::int64_t t, std::int64_t c);
void embedding_backward(const std::int32_t* tokens, const float* dy, float* dwte, float* dwpe,
                        std::int64_t b, std::int64_t t, std::int64_t c, std::int64_t v,
                        bool accumulate_wte, bool accumulate_wpe);
void layer_norm_forward(const float* x, const float* gamma, const float* beta, float* y,
                        float* mean, float* rstd, std::int64_t rows, std::int64_t c, float eps);
void layer_norm_backward(const float* x, const float* gamma, const float* mean, const float* rstd,
                         const float* dy, float* dx, float* dgamma, float* dbeta,
                         std::int64_t rows, std::int64_t c, bool accumulate);
void gelu_forward(const float* x, float* y, std::int64_t n);
void gelu_backward(const float* x, const float* dy, float* dx, std::int64_t n);
void add(const float* a, const float* b, float* y, std::int64_t n);
// att_mask is written (and read) only when p > 0.
void attention_forward(const Context& ctx, const AttentionShape& s, const float* qkv, float* y,
                       float* att, float* att_mask, float p, const DropoutKey& key);
void attention_backward(const Context& ctx, const AttentionShape& s, const float* qkv,
                        const float* att, const float* att_mask, const float* dy, float* dqkv,
                        float p);

void sgd_step(float* param, const float* grad, float* momentum_buf, std::int64_t n,
              const SgdHyper& h, bool first_step);
void adamw_step(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                std::int64_t n, const AdamWHyper& h, std::int64_t step_count);

}  // namespace dpt::kernels::cpu
