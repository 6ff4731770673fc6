// SPDX-License-Identifier: MIT
// TiedLmHead over kernels::linear_* on [B*T, C] rows.
#include "nn/layers/lm_head.h"

#include "kernels/ops.h"
#include "nn/layers/rows.h"

namespace dpt::nn {

std::string TiedLmHead::describe() const {
  return detail::str("TiedLmHead(", weight_.value.dim(1), " -> ", weight_.value.dim(0), ")");
}

Shape TiedLmHead::output_shape(const Shape& input) const {
  DPT_CHECK(input.size() == 3 && input[2] == weight_.value.dim(1), "module ", index(), " ",
            describe(), ": expected input [B, T, ", weight_.value.dim(1), "], got ",
            to_string(input));
  return {input[0], input[1], weight_.value.dim(0)};
}

Tensor TiedLmHead::forward(const Context& ctx, const Tensor& x, const StepInfo& info) {
  Tensor y = Tensor::empty(output_shape(x.shape()), DType::kF32, x.device());
  Tensor y_rows = as_rows(y);
  kernels::linear_forward(ctx, as_rows(x), weight_.value, Tensor(), y_rows, /*relu=*/false);
  if (info.training) input_ = x;
  return y;
}

Tensor TiedLmHead::backward(const Context& ctx, const Tensor& dy, const StepInfo& info,
                            bool need_dx) {
  DPT_CHECK(input_.defined(), "module ", index(), " ", describe(), ": backward without forward");
  const Tensor dy_rows = as_rows(dy);
  Tensor no_bias;
  kernels::linear_backward_weights(ctx, as_rows(input_), dy_rows, weight_.grad, no_bias,
                                   info.accumulate_grads);
  Tensor dx;
  if (need_dx) {
    dx = Tensor::empty(input_.shape(), DType::kF32, dy.device());
    Tensor dx_rows = as_rows(dx);
    kernels::linear_backward_data(ctx, dy_rows, weight_.value, dx_rows);
  }
  input_ = Tensor();
  return dx;
}

}  // namespace dpt::nn
