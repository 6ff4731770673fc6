// SPDX-License-Identifier: MIT
// Linear over kernels::linear_*.
#include "nn/layers/linear.h"

#include "kernels/ops.h"
#include "nn/layers/rows.h"

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

// [N, in] or, over sequences, [B, T, in] (as torch.nn.Linear, on the last dimension).
Shape Linear::output_shape(const Shape& input) const {
  DPT_CHECK((input.size() == 2 || input.size() == 3) && input.back() == in_features_, "layer ",
            index(), " ", describe(), ": expected input [N, ", in_features_, "] or [B, T, ",
            in_features_, "], got ", to_string(input));
  Shape out = input;
  out.back() = out_features_;
  return out;
}

void Linear::run_forward(const Context& ctx, const Tensor& x, const Tensor& w, Tensor& y) {
  Tensor y_rows = as_rows(y);
  kernels::linear_forward(ctx, as_rows(x), w, bias(), y_rows, relu());
}

void Linear::run_backward_weights(const Context& ctx, const Tensor& x, const Tensor& dy,
                                  Tensor& dw, Tensor& db, bool accumulate) {
  kernels::linear_backward_weights(ctx, as_rows(x), as_rows(dy), dw, db, accumulate);
}

void Linear::run_backward_data(const Context& ctx, const Tensor& dy, const Tensor& w, Tensor& dx) {
  Tensor dx_rows = as_rows(dx);
  kernels::linear_backward_data(ctx, as_rows(dy), w, dx_rows);
}

}  // namespace dpt::nn
