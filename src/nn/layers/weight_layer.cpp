// SPDX-License-Identifier: MIT
// The forward/backward sequence shared by Linear and Conv2d.
#include "nn/layers/weight_layer.h"

#include <algorithm>
#include <utility>

#include "kernels/ops.h"

namespace dpt::nn {
namespace {

// Note [Mixed precision in layers]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Under --precision bf16 or fp16 (StepInfo::compute) a Linear or Conv2d hands its kernels the
// input and the weight cast to that format, and in backward the output gradient (after the fused
// ReLU's mask) cast too (Note [Mixed-precision operands] in kernels/ops.h). The parameters, their
// gradients, the bias, the outputs and everything outside these layers (softmax, loss, optimizer)
// stay f32: the f32 weight is the master copy the optimizer updates, and each forward casts it
// afresh. The input is kept for backward in the compute format, so the activations a layer holds
// between forward and backward take half the memory, and backward reads exactly what forward did.
// As PyTorch's autocast, the weight gradient sums the products of half inputs in f32.
Tensor in_format(const Context& ctx, const Tensor& t, DType format) {
  if (format == DType::kF32 || t.dtype() == format) return t;
  Tensor converted = Tensor::empty(t.shape(), format, t.device());
  kernels::cast(ctx, t, converted);
  return converted;
}

}  // namespace

WeightLayer::WeightLayer(Shape weight_shape, std::int64_t bias_size, bool bias,
                         std::int64_t fan_in) {
  weight_ = Parameter{"weight", Tensor::empty(std::move(weight_shape)), {}, fan_in};
  if (bias) bias_ = Parameter{"bias", Tensor::empty({bias_size}), {}, fan_in};
}

Tensor WeightLayer::forward(const Context& ctx, const Tensor& x, const StepInfo& info) {
  Tensor y = Tensor::empty(output_shape(x.shape()), DType::kF32, x.device());
  const Tensor x_in = in_format(ctx, x, info.compute);
  const Tensor w_in = in_format(ctx, weight_.value, info.compute);
  run_forward(ctx, x_in, w_in, y);
  if (info.training) {
    input_ = x_in;
    weight_in_ = w_in;
    output_ = y;
    compute_ = info.compute;
  }
  return y;
}

Tensor WeightLayer::backward(const Context& ctx, const Tensor& dy_in, const StepInfo& info,
                             bool need_dx) {
  DPT_CHECK(input_.defined(), "layer ", index(), " ", describe(), ": backward without forward");
  Tensor dx;
  if (need_dx) dx = Tensor::empty(input_.shape(), DType::kF32, dy_in.device());
  const std::int64_t n = input_.dim(0);
  // The ReLU ran inside the forward kernel, so its gradient is a pass of its own, into a buffer
  // of ours (dy_in belongs to the caller and stays unchanged). It runs per sample group of the
  // backend's convolution (backward_group), so the group's masked gradient is still in cache when
  // the kernels read it; the kernels see the same groups as for the whole batch, in the same order
  // (the first group writes or accumulates as asked, the others add), so the bits are the same.
  const std::int64_t group =
      relu_ ? std::clamp<std::int64_t>(backward_group(ctx, input_.shape()), 1, n) : n;
  Tensor masked;
  for (std::int64_t first = 0; first < n; first += group) {
    const std::int64_t count = std::min(group, n - first);
    Tensor dy = Tensor::rows_of(dy_in, first, count);
    if (relu_) {
      if (!masked.defined()) {
        Shape group_shape = dy_in.shape();
        group_shape[0] = group;
        masked = Tensor::empty(std::move(group_shape), DType::kF32, dy_in.device());
      }
      Tensor out = count == group ? masked : Tensor::rows_of(masked, 0, count);
      kernels::relu_backward(ctx, Tensor::rows_of(output_, first, count), dy, out);
      dy = out;
    }
    dy = in_format(ctx, dy, compute_);
    run_backward_weights(ctx, Tensor::rows_of(input_, first, count), dy, weight_.grad, bias_.grad,
                         info.accumulate_grads || first > 0);
    if (need_dx) {
      Tensor dx_rows = Tensor::rows_of(dx, first, count);
      run_backward_data(ctx, dy, weight_in_, dx_rows);
    }
  }
  input_ = Tensor();
  weight_in_ = Tensor();
  output_ = Tensor();
  return dx;
}

std::vector<Parameter*> WeightLayer::parameters() {
  if (bias_.value.defined()) return {&weight_, &bias_};
  return {&weight_};
}

}  // namespace dpt::nn
