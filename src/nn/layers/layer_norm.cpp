// SPDX-License-Identifier: MIT
// LayerNorm over kernels::layer_norm_*.
#include "nn/layers/layer_norm.h"

#include "kernels/ops.h"

namespace dpt::nn {

LayerNorm::LayerNorm(std::int64_t channels, bool bias, float eps) : channels_(channels), eps_(eps) {
  DPT_CHECK(channels > 0 && eps > 0.0f, "LayerNorm: channels and eps must be positive, got ",
            channels, ", ", eps);
  weight_ = Parameter{"weight", Tensor::empty({channels}), {}, channels, Init::kOnes};
  if (bias) bias_ = Parameter{"bias", Tensor::empty({channels}), {}, channels, Init::kZeros};
}

std::string LayerNorm::describe() const {
  return detail::str("LayerNorm(", channels_, bias_.value.defined() ? "" : ", no bias", ")");
}

Shape LayerNorm::output_shape(const Shape& input) const {
  DPT_CHECK(input.size() >= 2 && input.back() == channels_, "module ", index(), " ", describe(),
            ": expected input [..., ", channels_, "], got ", to_string(input));
  return input;
}

Tensor LayerNorm::forward(const Context& ctx, const Tensor& x, const StepInfo& info) {
  Tensor y = Tensor::empty(output_shape(x.shape()), DType::kF32, x.device());
  const std::int64_t rows = x.numel() / channels_;
  Tensor mean = Tensor::empty({rows}, DType::kF32, x.device());
  Tensor rstd = Tensor::empty({rows}, DType::kF32, x.device());
  kernels::layer_norm_forward(ctx, x, weight_.value, bias_.value, y, mean, rstd, eps_);
  if (info.training) {
    input_ = x;
    mean_ = mean;
    rstd_ = rstd;
  }
  return y;
}

Tensor LayerNorm::backward(const Context& ctx, const Tensor& dy, const StepInfo& info,
                           bool need_dx) {
  DPT_CHECK(input_.defined(), "module ", index(), " ", describe(), ": backward without forward");
  // The kernel computes dx with the parameter gradients in one pass over the rows; a first layer
  // (need_dx false) still gets dx computed and dropped: LayerNorm is never first in a model.
  Tensor dx = Tensor::empty(input_.shape(), DType::kF32, dy.device());
  kernels::layer_norm_backward(ctx, input_, weight_.value, mean_, rstd_, dy, dx, weight_.grad,
                               bias_.grad, info.accumulate_grads);
  input_ = mean_ = rstd_ = Tensor();
  return need_dx ? dx : Tensor();
}

std::vector<Parameter*> LayerNorm::parameters() {
  if (bias_.value.defined()) return {&weight_, &bias_};
  return {&weight_};
}

}  // namespace dpt::nn
