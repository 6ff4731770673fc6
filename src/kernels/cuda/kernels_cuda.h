// SPDX-License-Identifier: MIT
// dpt::kernels::cuda: the CUDA backend behind dispatch.cpp, the same list as kernels_cpu.h.
// Inputs are already validated; pointers are device pointers on ctx.device(), sizes are elements.
// Every function queues its work on the compute stream of ctx.device() and returns without
// waiting, except where a result comes back to the host (sum_squares, softmax_cross_entropy) or
// data must be checked on the host (the labels). No CUDA header here: dispatch.cpp includes it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/ops.h"
#include "kernels/shapes.h"

namespace dpt::kernels::cuda {

// ---- cuBLASLt: dense ---------------------------------------------------------------------------
// The input operands (x and w, dy and w, x and dy) are `operands`: kF32, kBF16 or kF16, both alike
// (Note [Mixed-precision operands] in ops.h); outputs, bias and gradients are f32. Half operands
// run on tensor cores with f32 accumulation; f32 ones in plain fp32, or in TF32 where the
// context allows it (Context::allow_tf32).
void linear_forward(const Context& ctx, DType operands, const void* x, const void* w,
                    const float* b, float* y, std::int64_t n, std::int64_t k, std::int64_t m,
                    bool relu);
void linear_backward_data(const Context& ctx, DType operands, const void* dy, const void* w,
                          float* dx, std::int64_t n, std::int64_t k, std::int64_t m);
void linear_backward_weights(const Context& ctx, DType operands, const void* x, const void* dy,
                             float* dw, float* db, std::int64_t n, std::int64_t k, std::int64_t m,
                             bool accumulate);

// ---- cuDNN: convolution ------------------------------------------------------------------------
// Operands as for the dense layers. Half convolutions write their results in the format first
// (Note [Half convolutions on cuDNN] in conv.cpp), then widen them into the f32 outputs.
void conv2d_forward(const Context& ctx, const ConvShape& s, DType operands, const void* x,
                    const void* w, const float* b, float* y, bool relu);
void conv2d_backward_data(const Context& ctx, const ConvShape& s, DType operands, const void* dy,
                          const void* w, float* dx);
void conv2d_backward_weights(const Context& ctx, const ConvShape& s, DType operands, const void* x,
                             const void* dy, float* dw, float* db, bool accumulate);

// ---- own kernels: pooling (same workspace format as the CPU: one argmax byte per output) -----
std::size_t max_pool2d_workspace_bytes(const PoolShape& s);
void max_pool2d_forward(const Context& ctx, const PoolShape& s, const float* x, float* y,
                        std::uint8_t* workspace);
void max_pool2d_backward(const Context& ctx, const PoolShape& s, const float* dy,
                         const std::uint8_t* workspace, float* dx);

// ---- own kernels over elementwise_math.h / optim_math.h ---------------------------------------
void relu_forward(const Context& ctx, const float* x, float* y, std::int64_t n);
void relu_backward(const Context& ctx, const float* y, const float* dy, float* dx, std::int64_t n);
// x holds `samples` rows of `per_sample` elements; row s is global sample key.first_sample + s.
void dropout_forward(const Context& ctx, const float* x, float* y, float* mask,
                     std::int64_t samples, std::int64_t per_sample, float p, const DropoutKey& key);
void dropout_backward(const Context& ctx, const float* dy, const float* mask, float* dx,
                      std::int64_t n);
void scale(const Context& ctx, float* y, float alpha, std::int64_t n);
// cast.cu: the CPU's conversions, bit for bit; format is kBF16 or kF16.
void float_to_half(const Context& ctx, const float* x, void* y, DType format, std::int64_t n);
void half_to_float(const Context& ctx, const void* x, DType format, float* y, std::int64_t n);
void round_to_format(const Context& ctx, const float* x, float* y, DType format, std::int64_t n);
// y[i] = float(x[i]) (+ y[i] when accumulate), x in `format` (kBF16 or kF16): a half result
// widened into an f32 output or added to an f32 gradient; half_to_float is its accumulate=false.
void widen_into(const Context& ctx, const void* x, DType format, float* y, std::int64_t n,
                bool accumulate);
void axpy(const Context& ctx, float alpha, const float* x, float* y, std::int64_t n);
// Bitwise the CPU's result: same chunks, lanes and order (waits for the compute stream).
double sum_squares(const Context& ctx, const float* x, std::int64_t n);
// Each chunk's sum of squares, copied to host_out (waits for the device).
void sum_squares_chunks(const Context& ctx, const float* x, std::int64_t n, double* host_out);
// integrity_math.h. find_nonfinite: index[0] = the first index of a NaN or Inf in x[0, n), or n
// (a device int32; no synchronisation). hash_bits: the CPU's hash (waits for the compute stream).
void find_nonfinite(const Context& ctx, const float* x, std::int64_t n, std::int32_t* index);
std::uint64_t hash_bits(const Context& ctx, const float* x, std::int64_t n);

// labels is a device pointer; it is copied to the host and checked before any kernel runs.
// Waits for the compute stream (the loss and the count come back to the host).
LossResult softmax_cross_entropy(const Context& ctx, const float* logits,
                                 const std::int32_t* labels, float* dlogits, std::int64_t n,
                                 std::int64_t classes);
// Per-row losses and hit flags into device memory; no synchronisation.
void softmax_cross_entropy_rows(const Context& ctx, const float* logits,
                                const std::int32_t* labels, float* dlogits, std::int64_t n,
                                std::int64_t classes, double* row_loss, std::int32_t* row_hit);

// ---- own kernels over transformer_math.h (transformer.cu) -------------------------------------
// tokens [b, t] already checked on the host to lie in [0, V); wpe has at least t rows.
void embedding_forward(const Context& ctx, const std::int32_t* tokens, const float* wte,
                       const float* wpe, float* y, std::int64_t b, std::int64_t t,
                       std::int64_t c);
void embedding_backward(const Context& ctx, const std::int32_t* tokens, const float* dy,
                        float* dwte, float* dwpe, std::int64_t b, std::int64_t t, std::int64_t c,
                        std::int64_t v, bool accumulate_wte, bool accumulate_wpe);
void layer_norm_forward(const Context& ctx, const float* x, const float* gamma, const float* beta,
                        float* y, float* mean, float* rstd, std::int64_t rows, std::int64_t c,
                        float eps);
void layer_norm_backward(const Context& ctx, const float* x, const float* gamma,
                         const float* mean, const float* rstd, const float* dy, float* dx,
                         float* dgamma, float* dbeta, std::int64_t rows, std::int64_t c,
                         bool accumulate);
void gelu_forward(const Context& ctx, const float* x, float* y, std::int64_t n);
void gelu_backward(const Context& ctx, const float* x, const float* dy, float* dx,
                   std::int64_t n);
void add(const Context& ctx, const float* a, const float* b, float* y, std::int64_t n);
// att_mask is written (and read) only when p > 0.
void attention_forward(const Context& ctx, const AttentionShape& s, const float* qkv, float* y,
                       float* att, float* att_mask, float p, const DropoutKey& key);
void attention_backward(const Context& ctx, const AttentionShape& s, const float* qkv,
                        const float* att, const float* att_mask, const float* dy, float* dqkv,
                        float p);

void sgd_step(const Context& ctx, float* param, const float* grad, float* momentum_buf,
              std::int64_t n, const SgdHyper& h, bool first_step);
void adamw_step(const Context& ctx, float* param, const float* grad, float* exp_avg,
                float* exp_avg_sq, std::int64_t n, const AdamWHyper& h, std::int64_t step_count);

}  // namespace dpt::kernels::cuda
