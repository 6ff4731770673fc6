// SPDX-License-Identifier: MIT
// The forward/backward sequence shared by Linear and Conv2d.
#include "nn/layers/weight_layer.h"

#include "kernels/ops.h"

namespace dpt::nn {

WeightLayer::WeightLayer(Shape weight_shape, std::int64_t bias_size, bool bias,
                         std::int64_t fan_in) {
  weight_ = Parameter{"weight", Tensor::empty(std::move(weight_shape)), {}, fan_in};
  if (bias) bias_ = Parameter{"bias", Tensor::empty({bias_size}), {}, fan_in};
}

Tensor WeightLayer::forward(const Context& ctx, const Tensor& x, const StepInfo& info) {
  Tensor y = Tensor::empty(output_shape(x.shape()), DType::kF32, x.device());
  run_forward(ctx, x, y);
  if (info.training) {
    input_ = x;
    output_ = y;
  }
  return y;
}

Tensor WeightLayer::backward(const Context& ctx, const Tensor& dy_in, const StepInfo& info,
                             bool need_dx) {
  DPT_CHECK(input_.defined(), "layer ", index(), " ", describe(), ": backward without forward");
  Tensor dy = dy_in;
  if (relu_) {
    // The ReLU ran inside the forward kernel, so its gradient is applied here, into a buffer of
    // our own: dy_in belongs to the caller and stays unchanged.
    dy = Tensor::empty(dy_in.shape(), DType::kF32, dy_in.device());
    kernels::relu_backward(ctx, output_, dy_in, dy);
  }
  run_backward_weights(ctx, input_, dy, weight_.grad, bias_.grad, info.accumulate_grads);
  Tensor dx;
  if (need_dx) {
    dx = Tensor::empty(input_.shape(), DType::kF32, dy.device());
    run_backward_data(ctx, dy, dx);
  }
  input_ = Tensor();
  output_ = Tensor();
  return dx;
}

std::vector<Parameter*> WeightLayer::parameters() {
  if (bias_.value.defined()) return {&weight_, &bias_};
  return {&weight_};
}

}  // namespace dpt::nn
