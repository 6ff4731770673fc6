// SPDX-License-Identifier: MIT
// CausalSelfAttention: the core between nanoGPT's c_attn and c_proj. From qkv [B,T,3C] (q, k, v
// side by side) to y [B,T,C]: per head, softmax(q k^T / sqrt(D)) over earlier positions, dropout,
// times v, heads merged. No parameters: the projections are Linear children of the block.
#pragma once

#include "nn/module.h"

namespace dpt::nn {

class CausalSelfAttention final : public Module {
 public:
  CausalSelfAttention(std::int64_t channels, int heads, float dropout);

  std::string describe() const override;
  Shape output_shape(const Shape& input) const override;
  Tensor forward(const Context& ctx, const Tensor& qkv, const StepInfo& info) override;
  Tensor backward(const Context& ctx, const Tensor& dy, const StepInfo& info,
                  bool need_dx) override;

  void saved_for_backward(std::vector<const Tensor*>& out) const override {
    if (qkv_.defined()) out.push_back(&qkv_);
    if (att_.defined()) out.push_back(&att_);
    if (att_mask_.defined()) out.push_back(&att_mask_);
  }

 private:
  std::int64_t channels_;
  int heads_;
  float dropout_;
  Tensor qkv_, att_, att_mask_;  // saved by a training forward
  float dropout_used_ = 0.0f;    // the forward's p: evaluation runs without dropout
};

}  // namespace dpt::nn
