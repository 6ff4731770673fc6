// SPDX-License-Identifier: MIT
// Linear over kernels::linear_*.
#include "nn/layers/linear.h"

#include "kernels/ops.h"

namespace dpt::nn {
namespace {
std::int64_t checked_features(std::int64_t in_features, std::int64_t out_features) {
  DPT_CHECK(in_features > 0 && out_features > 0, "Linear: features must be positive, got ",
            in_features, " -> ", out_features);
  return in_features;
}
}  // namespace

Linear::Linear(std::int64_t in_features, std::int64_t out_features, bool bias)
    : WeightLayer({out_features, checked_features(in_features, out_features)}, out_features, bias,
                  in_features),
      in_features_(in_features),
      out_features_(out_features) {}

std::string Linear::describe() const {
  return detail::str("Linear(", in_features_, " -> ", out_features_, relu() ? ", relu" : "", ")");
}

Shape Linear::output_shape(const Shape& input) const {
  DPT_CHECK(input.size() == 2 && input[1] == in_features_, "layer ", index(), " ", describe(),
            ": expected input [N, ", in_features_, "], got ", to_string(input));
  return {input[0], out_features_};
}

void Linear::run_forward(const Context& ctx, const Tensor& x, Tensor& y) {
  kernels::linear_forward(ctx, x, weight(), bias(), y, relu());
}

void Linear::run_backward_weights(const Context& ctx, const Tensor& x, const Tensor& dy,
                                  Tensor& dw, Tensor& db, bool accumulate) {
  kernels::linear_backward_weights(ctx, x, dy, dw, db, accumulate);
}

void Linear::run_backward_data(const Context& ctx, const Tensor& dy, Tensor& dx) {
  kernels::linear_backward_data(ctx, dy, weight(), dx);
}

}  // namespace dpt::nn
