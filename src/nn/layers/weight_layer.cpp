// SPDX-License-Identifier: MIT
// The forward/backward sequence shared by Linear and Conv2d.
#include "nn/layers/weight_layer.h"

#include <algorithm>
#include <utility>

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
    run_backward_weights(ctx, Tensor::rows_of(input_, first, count), dy, weight_.grad, bias_.grad,
                         info.accumulate_grads || first > 0);
    if (need_dx) {
      Tensor dx_rows = Tensor::rows_of(dx, first, count);
      run_backward_data(ctx, dy, dx_rows);
    }
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
