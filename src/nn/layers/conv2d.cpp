// SPDX-License-Identifier: MIT
// Conv2d forward/backward over kernels::conv2d_*; the fused ReLU is undone in backward.
#include "nn/layers/conv2d.h"

namespace dpt::nn {

Conv2d::Conv2d(std::int64_t in_channels, std::int64_t out_channels, int kernel, int stride,
               int padding, bool bias)
    : in_channels_(in_channels), out_channels_(out_channels), kernel_(kernel), has_bias_(bias) {
  DPT_CHECK(in_channels > 0 && out_channels > 0 && kernel > 0 && stride > 0 && padding >= 0,
            "Conv2d: expected positive channels, kernel and stride and padding >= 0, got in=",
            in_channels, " out=", out_channels, " kernel=", kernel, " stride=", stride,
            " padding=", padding);
  params_ = kernels::Conv2dParams{stride, stride, padding, padding};
  const std::int64_t fan_in = in_channels * kernel * kernel;
  weight_ = Parameter{"weight", {}, {}, fan_in};
  weight_.value = Tensor::empty({out_channels, in_channels, kernel, kernel});
  if (has_bias_) {
    bias_ = Parameter{"bias", {}, {}, fan_in};
    bias_.value = Tensor::empty({out_channels});
  }
}

std::string Conv2d::describe() const {
  return detail::str("Conv2d(", in_channels_, " -> ", out_channels_, ", kernel ", kernel_,
                     ", stride ", params_.stride_h, ", padding ", params_.pad_h,
                     relu_ ? ", relu" : "", ")");
}

Shape Conv2d::output_shape(const Shape& input) const {
  DPT_CHECK(input.size() == 4 && input[1] == in_channels_, "layer ", index(), " ", describe(),
            ": expected input [N,", in_channels_, ",H,W], got ", to_string(input));
  return kernels::conv2d_output_shape(input, weight_.value.shape(), params_);
}

Tensor Conv2d::forward(const Context& ctx, const Tensor& x, const StepInfo& info) {
  Tensor y = Tensor::empty(output_shape(x.shape()));
  kernels::conv2d_forward(ctx, x, weight_.value, bias_.value, y, params_, relu_);
  if (info.training) {
    input_ = x;
    output_ = y;
  }
  return y;
}

Tensor Conv2d::backward(const Context& ctx, const Tensor& dy_in, const StepInfo& info,
                        bool need_dx) {
  DPT_CHECK(input_.defined(), "layer ", index(), " ", describe(), ": backward without forward");
  Tensor dy = dy_in;
  if (relu_) {  // see Linear::backward
    dy = Tensor::empty(dy_in.shape());
    kernels::relu_backward(ctx, output_, dy_in, dy);
  }
  kernels::conv2d_backward_weights(ctx, input_, dy, weight_.grad, bias_.grad, params_,
                                   info.accumulate_grads);
  Tensor dx;
  if (need_dx) {
    dx = Tensor::empty(input_.shape());
    kernels::conv2d_backward_data(ctx, dy, weight_.value, dx, params_);
  }
  input_ = Tensor();
  output_ = Tensor();
  return dx;
}

std::vector<Parameter*> Conv2d::parameters() {
  if (has_bias_) return {&weight_, &bias_};
  return {&weight_};
}

}  // namespace dpt::nn
