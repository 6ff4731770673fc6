// SPDX-License-Identifier: MIT
// Linear forward/backward over kernels::linear_*; the fused ReLU is undone in backward.
#include "nn/layers/linear.h"

#include "kernels/ops.h"

namespace dpt::nn {

Linear::Linear(std::int64_t in_features, std::int64_t out_features, bool bias)
    : in_features_(in_features), out_features_(out_features), has_bias_(bias) {
  DPT_CHECK(in_features > 0 && out_features > 0, "Linear: features must be positive, got ",
            in_features, " -> ", out_features);
  weight_ = Parameter{"weight", {}, {}, in_features};
  weight_.value = Tensor::empty({out_features, in_features});
  if (has_bias_) {
    bias_ = Parameter{"bias", {}, {}, in_features};
    bias_.value = Tensor::empty({out_features});
  }
}

std::string Linear::describe() const {
  return detail::str("Linear(", in_features_, " -> ", out_features_, relu_ ? ", relu" : "", ")");
}

Shape Linear::output_shape(const Shape& input) const {
  DPT_CHECK(input.size() == 2 && input[1] == in_features_, "layer ", index(), " ", describe(),
            ": expected input [N,", in_features_, "], got ", to_string(input));
  return {input[0], out_features_};
}

Tensor Linear::forward(const Context& ctx, const Tensor& x, const StepInfo& info) {
  Tensor y = Tensor::empty(output_shape(x.shape()));
  kernels::linear_forward(ctx, x, weight_.value, bias_.value, y, relu_);
  if (info.training) {
    input_ = x;
    output_ = y;
  }
  return y;
}

Tensor Linear::backward(const Context& ctx, const Tensor& dy_in, const StepInfo& info,
                        bool need_dx) {
  DPT_CHECK(input_.defined(), "layer ", index(), " ", describe(), ": backward without forward");
  Tensor dy = dy_in;
  if (relu_) {
    // The ReLU was applied inside the forward kernel, so its gradient is applied here, into a
    // buffer of our own: dy_in belongs to the caller and stays unchanged.
    dy = Tensor::empty(dy_in.shape());
    kernels::relu_backward(ctx, output_, dy_in, dy);
  }
  kernels::linear_backward_weights(ctx, input_, dy, weight_.grad, bias_.grad,
                                   info.accumulate_grads);
  Tensor dx;
  if (need_dx) {
    dx = Tensor::empty(input_.shape());
    kernels::linear_backward_data(ctx, dy, weight_.value, dx);
  }
  input_ = Tensor();
  output_ = Tensor();
  return dx;
}

std::vector<Parameter*> Linear::parameters() {
  if (has_bias_) return {&weight_, &bias_};
  return {&weight_};
}

}  // namespace dpt::nn
