// SPDX-License-Identifier: MIT
// ReLU, MaxPool2d, Flatten, GELU and Dropout: the parameter-free layers.
#include "nn/layers/simple.h"

namespace dpt::nn {

Tensor ReLU::forward(const Context& ctx, const Tensor& x, const StepInfo& info) {
  if (fused_) return x;
  Tensor y = Tensor::empty(x.shape(), DType::kF32, x.device());
  kernels::relu_forward(ctx, x, y);
  if (info.training) output_ = y;
  return y;
}

Tensor ReLU::backward(const Context& ctx, const Tensor& dy, const StepInfo&, bool need_dx) {
  if (fused_ || !need_dx) return need_dx ? dy : Tensor();
  DPT_CHECK(output_.defined(), "layer ", index(), " ReLU: backward without forward");
  Tensor dx = Tensor::empty(dy.shape(), DType::kF32, dy.device());
  kernels::relu_backward(ctx, output_, dy, dx);
  output_ = Tensor();
  return dx;
}

MaxPool2d::MaxPool2d(int kernel, int stride, int padding) {
  if (stride == 0) stride = kernel;  // PyTorch's default: stride = kernel_size
  DPT_CHECK(kernel > 0 && stride > 0 && padding >= 0 && 2 * padding <= kernel,
            "MaxPool2d: expected kernel > 0, stride > 0, 0 <= padding <= kernel/2, got kernel=",
            kernel, " stride=", stride, " padding=", padding);
  params_ = kernels::Pool2dParams{kernel, kernel, stride, stride, padding, padding};
}

std::string MaxPool2d::describe() const {
  return detail::str("MaxPool2d(kernel ", params_.kernel_h, ", stride ", params_.stride_h, ")");
}

Shape MaxPool2d::output_shape(const Shape& input) const {
  DPT_CHECK(input.size() == 4, "layer ", index(), " ", describe(), ": expected input [N,C,H,W], got ",
            to_string(input));
  return kernels::pool2d_output_shape(input, params_);
}

Tensor MaxPool2d::forward(const Context& ctx, const Tensor& x, const StepInfo& info) {
  Tensor y = Tensor::empty(output_shape(x.shape()), DType::kF32, x.device());
  Tensor workspace;
  kernels::max_pool2d_forward(ctx, x, y, workspace, params_);
  if (info.training) {
    input_shape_ = x.shape();
    workspace_ = workspace;
  }
  return y;
}

Tensor MaxPool2d::backward(const Context& ctx, const Tensor& dy, const StepInfo&, bool need_dx) {
  if (!need_dx) return Tensor();
  DPT_CHECK(workspace_.defined(), "layer ", index(), " ", describe(), ": backward without forward");
  Tensor dx = Tensor::empty(input_shape_, DType::kF32, dy.device());
  kernels::max_pool2d_backward(ctx, dy, workspace_, dx, params_);
  workspace_ = Tensor();
  return dx;
}

Shape Flatten::output_shape(const Shape& input) const {
  DPT_CHECK(!input.empty(), "layer ", index(), " Flatten: input has no batch dimension");
  std::int64_t features = 1;
  for (std::size_t i = 1; i < input.size(); ++i) features *= input[i];
  return {input[0], features};
}

Tensor Flatten::forward(const Context&, const Tensor& x, const StepInfo& info) {
  if (info.training) input_shape_ = x.shape();
  return x.reshape(output_shape(x.shape()));
}

Tensor Flatten::backward(const Context&, const Tensor& dy, const StepInfo&, bool need_dx) {
  return need_dx ? dy.reshape(input_shape_) : Tensor();
}

Tensor Gelu::forward(const Context& ctx, const Tensor& x, const StepInfo& info) {
  Tensor y = Tensor::empty(x.shape(), DType::kF32, x.device());
  kernels::gelu_forward(ctx, x, y);
  if (info.training) input_ = x;
  return y;
}

Tensor Gelu::backward(const Context& ctx, const Tensor& dy, const StepInfo&, bool need_dx) {
  DPT_CHECK(input_.defined(), "module ", index(), " GELU: backward without forward");
  Tensor dx;
  if (need_dx) {
    dx = Tensor::empty(dy.shape(), DType::kF32, dy.device());
    kernels::gelu_backward(ctx, input_, dy, dx);
  }
  input_ = Tensor();
  return dx;
}

Dropout::Dropout(float p) : p_(p) {
  DPT_CHECK(p >= 0.0f && p < 1.0f, "Dropout: p must be in [0, 1), got ", p);
}

std::string Dropout::describe() const { return detail::str("Dropout(p=", p_, ")"); }

Tensor Dropout::forward(const Context& ctx, const Tensor& x, const StepInfo& info) {
  if (!info.training || p_ == 0.0f) return x;
  Tensor y = Tensor::empty(x.shape(), DType::kF32, x.device());
  mask_ = Tensor::empty(x.shape(), DType::kF32, x.device());
  const kernels::DropoutKey key{info.seed, info.step, static_cast<std::uint32_t>(index()),
                                info.first_sample};
  kernels::dropout_forward(ctx, x, y, mask_, p_, key);
  return y;
}

Tensor Dropout::backward(const Context& ctx, const Tensor& dy, const StepInfo&, bool need_dx) {
  if (!need_dx) return Tensor();
  if (p_ == 0.0f) return dy;
  DPT_CHECK(mask_.defined(), "layer ", index(), " ", describe(), ": backward without forward");
  Tensor dx = Tensor::empty(dy.shape(), DType::kF32, dy.device());
  kernels::dropout_backward(ctx, dy, mask_, dx);
  mask_ = Tensor();
  return dx;
}

}  // namespace dpt::nn
