// SPDX-License-Identifier: MIT
// TokenPositionEmbedding over kernels::embedding_*.
#include "nn/layers/embedding.h"

#include "kernels/ops.h"

namespace dpt::nn {

TokenPositionEmbedding::TokenPositionEmbedding(std::int64_t vocab_size, std::int64_t max_positions,
                                               std::int64_t channels)
    : vocab_size_(vocab_size), max_positions_(max_positions), channels_(channels) {
  DPT_CHECK(vocab_size > 0 && max_positions > 0 && channels > 0,
            "TokenPositionEmbedding: vocab_size, positions and channels must be positive, got ",
            vocab_size, ", ", max_positions, ", ", channels);
  wte_ = Parameter{"wte.weight", Tensor::empty({vocab_size, channels}), {}, channels};
  wpe_ = Parameter{"wpe.weight", Tensor::empty({max_positions, channels}), {}, channels};
}

std::string TokenPositionEmbedding::describe() const {
  return detail::str("TokenPositionEmbedding(vocab ", vocab_size_, ", positions ", max_positions_,
                     ", width ", channels_, ")");
}

Shape TokenPositionEmbedding::output_shape(const Shape& input) const {
  DPT_CHECK(input.size() == 2 && input[1] <= max_positions_, "module ", index(), " ", describe(),
            ": expected tokens [B, T] with T <= ", max_positions_, ", got ", to_string(input));
  return {input[0], input[1], channels_};
}

Tensor TokenPositionEmbedding::forward(const Context& ctx, const Tensor& tokens,
                                       const StepInfo& info) {
  Tensor y = Tensor::empty(output_shape(tokens.shape()), DType::kF32, tokens.device());
  kernels::embedding_forward(ctx, tokens, wte_.value, wpe_.value, y);
  if (info.training) tokens_ = tokens;
  return y;
}

Tensor TokenPositionEmbedding::backward(const Context& ctx, const Tensor& dy, const StepInfo& info,
                                        bool /*need_dx*/) {
  DPT_CHECK(tokens_.defined(), "module ", index(), " ", describe(), ": backward without forward");
  kernels::embedding_backward(ctx, tokens_, dy, wte_.grad, wpe_.grad,
                              /*accumulate_wte=*/tied_ || info.accumulate_grads,
                              /*accumulate_wpe=*/info.accumulate_grads);
  tokens_ = Tensor();
  return Tensor();  // tokens have no gradient
}

}  // namespace dpt::nn
