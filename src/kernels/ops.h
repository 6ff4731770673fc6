// SPDX-License-Identifier: MIT
// One device-agnostic entry per op. Shapes are NCHW for images and [N, features] for matrices;
// every tensor is contiguous f32 unless stated. Counts are elements. Outputs must be allocated by
// the caller with the shape stated and must not alias inputs unless the contract says so.
// dispatch.cpp checks shapes and dtypes, then picks the backend of ctx.device().
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/context.h"
#include "runtime/tensor.h"

namespace dpt::kernels {

// Note [Mixed-precision operands]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The two input operands of a GEMM or convolution below (x and w forward, dy and w for the data
// gradient, x and dy for the weight gradient) are both f32, or both bf16, or both f16
// (--precision); outputs, biases and weight gradients are f32 whatever they are, so sums
// accumulate in f32 as on a GPU's tensor cores. A product of two half values is exact in f32
// (significands of 8 or 11 bits), so widening the half inputs and running the f32 path computes
// what a half-input, f32-accumulate GEMM computes, up to the order of its sums: the CPU's
// emulation where the ISA has no bf16. Native kernels keep the contract: oneDNN bf16 on the CPU,
// cuBLASLt and cuDNN on tensor cores on a GPU, where cuDNN's half convolutions round each result
// to the format once before it is widened (Note [Half convolutions on cuDNN] in cuda/conv.cpp).

// ---- dense layers ---------------------------------------------------------------------------
// y[N,M] = x[N,K] * w[M,K]^T + b[M]; then max(y, 0) when relu. b may be undefined (no bias).
void linear_forward(const Context& ctx, const Tensor& x, const Tensor& w, const Tensor& b,
                    Tensor& y, bool relu);
// dx[N,K] = dy[N,M] * w[M,K]
void linear_backward_data(const Context& ctx, const Tensor& dy, const Tensor& w, Tensor& dx);
// dw[M,K] = dy^T * x and db[M] = sum over n of dy; added to the existing values when accumulate
// (gradient accumulation over micro-batches). db may be undefined.
void linear_backward_weights(const Context& ctx, const Tensor& x, const Tensor& dy, Tensor& dw,
                             Tensor& db, bool accumulate);

// ---- convolution ----------------------------------------------------------------------------
struct Conv2dParams {
  int stride_h = 1, stride_w = 1;
  int pad_h = 0, pad_w = 0;
};
// Output shape of x[N,C,H,W] convolved with w[O,C,KH,KW]; throws when the window does not fit.
Shape conv2d_output_shape(const Shape& x, const Shape& w, const Conv2dParams& p);
// y[N,O,OH,OW] = conv(x, w) + b[O]; max(y, 0) when relu. b may be undefined.
void conv2d_forward(const Context& ctx, const Tensor& x, const Tensor& w, const Tensor& b,
                    Tensor& y, const Conv2dParams& p, bool relu);
// dx[N,C,H,W] from dy[N,O,OH,OW] and w.
void conv2d_backward_data(const Context& ctx, const Tensor& dy, const Tensor& w, Tensor& dx,
                          const Conv2dParams& p);
// dw[O,C,KH,KW] and db[O] (may be undefined) from x and dy; added when accumulate.
void conv2d_backward_weights(const Context& ctx, const Tensor& x, const Tensor& dy, Tensor& dw,
                             Tensor& db, const Conv2dParams& p, bool accumulate);
// How many samples of x[N,C,H,W] the backend runs a convolution over at a time: cache-sized
// groups on the CPU (Note [Convolution sample groups] in kernels/cpu/conv.cpp), all N on a GPU
// and in thread-invariant mode. A layer that adds an elementwise pass around a convolution (the
// fused ReLU's gradient) runs it per group, so that its output is still in cache when read; the
// convolution of a group equals that group's share of the whole batch's, bit for bit.
std::int64_t conv2d_sample_group(const Context& ctx, const Shape& x, const Shape& w,
                                 const Conv2dParams& p);

// ---- pooling --------------------------------------------------------------------------------
struct Pool2dParams {
  int kernel_h = 2, kernel_w = 2;
  int stride_h = 2, stride_w = 2;
  int pad_h = 0, pad_w = 0;
};
Shape pool2d_output_shape(const Shape& x, const Pool2dParams& p);
// y = max over each window. `workspace` is (re)allocated by the forward to what the backward
// needs (the argmax positions); pass the same tensor to the backward.
void max_pool2d_forward(const Context& ctx, const Tensor& x, Tensor& y, Tensor& workspace,
                        const Pool2dParams& p);
// dx (shape of the forward's x) gets each dy at its window's argmax; dx is overwritten.
void max_pool2d_backward(const Context& ctx, const Tensor& dy, const Tensor& workspace, Tensor& dx,
                         const Pool2dParams& p);

// ---- elementwise ----------------------------------------------------------------------------
// y = max(x, 0). y may alias x.
void relu_forward(const Context& ctx, const Tensor& x, Tensor& y);
// dx = dy where y > 0, else 0 (y is the forward's output). dx may alias dy.
void relu_backward(const Context& ctx, const Tensor& y, const Tensor& dy, Tensor& dx);

// What a dropout mask belongs to (DESIGN.md, Determinism): the mask of element e of sample s is
// Philox(seed; step, layer, first_sample + s, e), whatever the batch split or world size.
struct DropoutKey {
  std::uint64_t seed = 0;
  std::uint32_t step = 0;
  std::uint32_t layer = 0;
  std::int64_t first_sample = 0;  // global index of the batch's first sample
};
// y = x * mask, mask = 1/(1-p) with probability 1-p else 0; `mask` (shape of x) is written for the
// backward. p in [0, 1). y may alias x.
void dropout_forward(const Context& ctx, const Tensor& x, Tensor& y, Tensor& mask, float p,
                     const DropoutKey& key);
// dx = dy * mask. dx may alias dy.
void dropout_backward(const Context& ctx, const Tensor& dy, const Tensor& mask, Tensor& dx);

// y *= alpha
void scale(const Context& ctx, Tensor& y, float alpha);

// ---- precision (Note [Half-precision conversions] in runtime/dtype.h) --------------------------
// y = x converted to y's dtype, same element count: f32 -> bf16 or f16 (round to nearest even;
// Inf kept, out of range to Inf, NaN kept quiet with its sign and top payload bits), bf16 or
// f16 -> f32 (exact). The same bits on every ISA, thread count and device.
void cast(const Context& ctx, const Tensor& x, Tensor& y);
// y (f32) = x (f32) rounded to the nearest value of `format` (kBF16 or kF16): cast there and
// back in one pass. y may alias x.
void round_to_format(const Context& ctx, const Tensor& x, Tensor& y, DType format);
// y += alpha * x
void axpy(const Context& ctx, float alpha, const Tensor& x, Tensor& y);
// Sum of squares in double, reduced in a fixed order (same result for any thread count): the
// squares of each chunk of kSumSquaresChunk elements are summed in double (a fixed lane order),
// then the chunk sums are added in index order.
double sum_squares(const Context& ctx, const Tensor& x);
constexpr std::int64_t kSumSquaresChunk = 4096;
// The chunk sums of sum_squares(x), one per kSumSquaresChunk elements (the last may be shorter),
// written to `chunks` (on the host). Adding them in index order gives sum_squares(x) bit for bit;
// so does adding those of consecutive ranges of x that start at multiples of the chunk (a sharded
// gradient's norm: Note [Sharded gradient norm] in nn/optim/optimizer.cpp).
void sum_squares_chunks(const Context& ctx, const Tensor& x, std::vector<double>& chunks);

// ---- transformer layers (kernels/transformer_math.h) ---------------------------------------------
// Activations are [B, T, C] (batch, position, channel), contiguous; ops that work per row treat
// any tensor as [numel / C, C].

// y[B,T,C] = wte[tokens[b,t]] + wpe[t]. tokens i32 [B,T] with values in [0, V) (a value outside
// is an error naming it and its position; on a GPU the check copies tokens to the host, which
// waits for the device), wte [V,C], wpe [P,C] with P >= T.
void embedding_forward(const Context& ctx, const Tensor& tokens, const Tensor& wte,
                       const Tensor& wpe, Tensor& y);
// dwte[v] = sum of dy[b,t] over the positions with tokens[b,t] == v, dwpe[t] = sum over b of
// dy[b,t] (rows of dwpe at or past T are left alone). Each sum runs in (b, t) order, whatever the
// thread count. accumulate_wte / accumulate_wpe: add to the existing values instead of
// overwriting them (a tied language-model head has written dwte first).
void embedding_backward(const Context& ctx, const Tensor& tokens, const Tensor& dy, Tensor& dwte,
                        Tensor& dwpe, bool accumulate_wte, bool accumulate_wpe);

// Layer normalisation over the last dimension C of x (as torch.nn.LayerNorm(C, eps)):
// y = (x - mean) * rstd * gamma + beta with rstd = 1 / sqrt(var + eps) (biased variance).
// mean and rstd (f32 [rows]) are written for the backward. beta may be undefined (bias=False).
void layer_norm_forward(const Context& ctx, const Tensor& x, const Tensor& gamma,
                        const Tensor& beta, Tensor& y, Tensor& mean, Tensor& rstd, float eps);
// dx (overwritten) and dgamma, dbeta (added to when accumulate; dbeta may be undefined) from the
// forward's x, mean, rstd and dy. dgamma/dbeta sum over rows in row order for any thread count.
void layer_norm_backward(const Context& ctx, const Tensor& x, const Tensor& gamma,
                         const Tensor& mean, const Tensor& rstd, const Tensor& dy, Tensor& dx,
                         Tensor& dgamma, Tensor& dbeta, bool accumulate);

// GELU, tanh form (GPT-2; torch.nn.GELU(approximate="tanh")). y may alias x.
void gelu_forward(const Context& ctx, const Tensor& x, Tensor& y);
// dx = dy * gelu'(x), x the forward's input. dx may alias dy.
void gelu_backward(const Context& ctx, const Tensor& x, const Tensor& dy, Tensor& dx);

// y = a + b (same shapes). y may alias a or b. (The residual connection.)
void add(const Context& ctx, const Tensor& a, const Tensor& b, Tensor& y);

// Causal multi-head self-attention core (nanoGPT's CausalSelfAttention between c_attn and
// c_proj). qkv [B,T,3C] holds q, k and v side by side (channels [0,C), [C,2C), [2C,3C)), head h
// of each at channels [h*D, (h+1)*D) with D = C / heads. For each (b, h):
//   att = softmax(q k^T / sqrt(D)) over j <= i (entries above the diagonal are 0),
//   y[b, :, h*D:(h+1)*D] = dropout(att) v,
// with y [B,T,C]. att [B,heads,T,T] (the softmax, before dropout) is written for the backward;
// so is att_mask (same shape) when dropout_p > 0 (then the mask of element (h, i, j) of sample b
// is the dropout mask of element h*T*T + i*T + j of global sample key.first_sample + b), else
// att_mask is not touched.
void attention_forward(const Context& ctx, const Tensor& qkv, Tensor& y, Tensor& att,
                       Tensor& att_mask, int heads, float dropout_p, const DropoutKey& key);
// dqkv [B,T,3C] (overwritten) from the forward's qkv, att, att_mask (when dropout_p > 0) and dy.
void attention_backward(const Context& ctx, const Tensor& qkv, const Tensor& att,
                        const Tensor& att_mask, const Tensor& dy, Tensor& dqkv, int heads,
                        float dropout_p);

// ---- integrity checks (kernels/integrity_math.h) ------------------------------------------------
// index (i32 [1] on ctx's device) receives the index of the first NaN or +-Inf of x (f32), or
// x.numel() when every value is finite. It does not wait for the device: the gradient check runs
// on each bucket as backward completes it and reads the result once per step. x.numel() < 2^31.
void find_nonfinite(const Context& ctx, const Tensor& x, Tensor& index);
// The same scan of a host buffer outside any Context (a checkpoint snapshot, possibly on the
// checkpoint writer's thread), on the calling thread alone: the first NaN or +-Inf, or n.
std::int64_t first_nonfinite_on_host(const float* x, std::int64_t n);
// A 64-bit hash of x's bits (Note [Parameter hash]): equal tensors hash equal, and a change of any
// one element always changes it; the same value for any thread count and on either backend.
// Waits for the device.
std::uint64_t hash_bits(const Context& ctx, const Tensor& x);

// ---- loss -----------------------------------------------------------------------------------
struct LossResult {
  double loss_sum = 0.0;       // sum over samples of -log softmax(logits)[label]
  std::int64_t correct = 0;    // samples whose argmax equals the label
};
// Softmax cross-entropy summed over the N samples of logits[N,C] with labels i32[N] in [0, C).
// When dlogits is defined it receives softmax(logits) - onehot(label): the gradient of the sum
// (the 1/global_batch scale comes once, after reduction).
LossResult softmax_cross_entropy(const Context& ctx, const Tensor& logits, const Tensor& labels,
                                 Tensor* dlogits);

// Where softmax_cross_entropy_rows writes its per-sample results: memory of ctx's device, at least
// N entries each.
struct LossRows {
  double* loss = nullptr;        // -log softmax(logits)[label] per sample
  std::int32_t* hit = nullptr;   // 1 when argmax == label, 0 otherwise, -1 for a bad label
};
// The same math per sample, without reading anything back: for a training step whose loss is
// read once, at its end (on a GPU a read per micro-batch would stall the host). The loss of the
// rows, summed in row order from 0 in double, is bitwise softmax_cross_entropy's loss_sum. On the
// CPU a label outside [0, C) is an error at once; on a GPU the sample is flagged (hit -1) and the
// reader reports it.
void softmax_cross_entropy_rows(const Context& ctx, const Tensor& logits, const Tensor& labels,
                                Tensor* dlogits, LossRows rows);

// ---- optimizers (PyTorch semantics, see src/kernels/optim_math.h) -----------------------------
// Hyper-parameters are doubles, as Python floats are in torch.optim: derived constants such as
// 1 - beta2 are computed in double and rounded once (1 - 0.999f in float is off by 1.3e-5).
// grad_scale multiplies the gradient as it is read (the 1/global_batch mean, fused into the step).
struct SgdHyper {
  double lr = 0.01;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
  double grad_scale = 1.0;
};
// One SGD step on param with grad; momentum_buf is used when momentum > 0 and is initialised
// from the gradient when first_step (as torch.optim.SGD does). grad is not modified.
void sgd_step(const Context& ctx, Tensor& param, const Tensor& grad, Tensor& momentum_buf,
              const SgdHyper& h, bool first_step);

struct AdamWHyper {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
  double grad_scale = 1.0;
};
// One AdamW step; step_count is the 1-based step number used for bias correction.
void adamw_step(const Context& ctx, Tensor& param, const Tensor& grad, Tensor& exp_avg,
                Tensor& exp_avg_sq, const AdamWHyper& h, std::int64_t step_count);

// ---- backend facts ---------------------------------------------------------------------------
// Which library runs the CPU backend's dense products on this machine, and why (decided once per
// process by a fixed rule on what oneDNN and OpenBLAS detect; DPT_CPU_GEMM=onednn|openblas
// overrides it for measurements): for the log and the run summary.
struct CpuGemmFacts {
  std::string isa;            // the ISA oneDNN dispatches to
  std::string openblas_core;  // the kernel set OpenBLAS detected
  std::string backward_data;  // "onednn" or "openblas"
  std::string reason;
};
CpuGemmFacts cpu_gemm_facts();

}  // namespace dpt::kernels
