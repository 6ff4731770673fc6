// SPDX-License-Identifier: MIT
// CausalSelfAttention over kernels::attention_*.
#include "nn/layers/attention.h"

#include "kernels/ops.h"

namespace dpt::nn {

CausalSelfAttention::CausalSelfAttention(std::int64_t channels, int heads, float dropout)
    : channels_(channels), heads_(heads), dropout_(dropout) {
  DPT_CHECK(channels > 0 && heads > 0 && channels % heads == 0, "CausalSelfAttention: ", heads,
            " heads do not divide the width ", channels, " (n_embd must be a multiple of n_head)");
  DPT_CHECK(dropout >= 0.0f && dropout < 1.0f,
            "CausalSelfAttention: dropout must be in [0, 1), got ", dropout);
}

std::string CausalSelfAttention::describe() const {
  return detail::str("CausalSelfAttention(width ", channels_, ", heads ", heads_,
                     dropout_ > 0.0f ? detail::str(", dropout ", dropout_) : std::string(), ")");
}

Shape CausalSelfAttention::output_shape(const Shape& input) const {
  DPT_CHECK(input.size() == 3 && input[2] == 3 * channels_, "module ", index(), " ", describe(),
            ": expected q, k, v [B, T, ", 3 * channels_, "], got ", to_string(input));
  return {input[0], input[1], channels_};
}

Tensor CausalSelfAttention::forward(const Context& ctx, const Tensor& qkv, const StepInfo& info) {
  const Shape out = output_shape(qkv.shape());
  Tensor y = Tensor::empty(out, DType::kF32, qkv.device());
  const std::int64_t batch = out[0], positions = out[1];
  Tensor att = Tensor::empty({batch, heads_, positions, positions}, DType::kF32, qkv.device());
  const float p = info.training ? dropout_ : 0.0f;
  Tensor mask;
  if (p > 0.0f) mask = Tensor::empty(att.shape(), DType::kF32, qkv.device());
  const kernels::DropoutKey key{info.seed, info.step, static_cast<std::uint32_t>(index()),
                                info.first_sample};
  kernels::attention_forward(ctx, qkv, y, att, mask, heads_, p, key);
  if (info.training) {
    qkv_ = qkv;
    att_ = att;
    att_mask_ = mask;
    dropout_used_ = p;
  }
  return y;
}

Tensor CausalSelfAttention::backward(const Context& ctx, const Tensor& dy, const StepInfo&,
                                     bool need_dx) {
  DPT_CHECK(qkv_.defined(), "module ", index(), " ", describe(), ": backward without forward");
  Tensor dqkv;
  if (need_dx) {
    dqkv = Tensor::empty(qkv_.shape(), DType::kF32, dy.device());
    kernels::attention_backward(ctx, qkv_, att_, att_mask_, dy, dqkv, heads_, dropout_used_);
  }
  qkv_ = att_ = att_mask_ = Tensor();
  return dqkv;
}

}  // namespace dpt::nn
