// SPDX-License-Identifier: MIT
// Conv2d over kernels::conv2d_*.
#include "nn/layers/conv2d.h"

namespace dpt::nn {
namespace {
std::int64_t checked_channels(std::int64_t in, std::int64_t out, int kernel, int stride,
                              int padding) {
  DPT_CHECK(in > 0 && out > 0 && kernel > 0 && stride > 0 && padding >= 0,
            "Conv2d: expected positive channels, kernel and stride and padding >= 0, got in=", in,
            " out=", out, " kernel=", kernel, " stride=", stride, " padding=", padding);
  return in;
}
}  // namespace

Conv2d::Conv2d(std::int64_t in_channels, std::int64_t out_channels, int kernel, int stride,
               int padding, bool bias)
    : WeightLayer({out_channels,
                   checked_channels(in_channels, out_channels, kernel, stride, padding), kernel,
                   kernel},
                  out_channels, bias, in_channels * kernel * kernel),
      in_channels_(in_channels),
      out_channels_(out_channels),
      kernel_(kernel),
      params_{stride, stride, padding, padding} {}

std::string Conv2d::describe() const {
  return detail::str("Conv2d(", in_channels_, " -> ", out_channels_, ", kernel ", kernel_,
                     ", stride ", params_.stride_h, ", padding ", params_.pad_h,
                     relu() ? ", relu" : "", ")");
}

Shape Conv2d::output_shape(const Shape& input) const {
  DPT_CHECK(input.size() == 4 && input[1] == in_channels_, "layer ", index(), " ", describe(),
            ": expected input [N, ", in_channels_, ", H, W], got ", to_string(input));
  return kernels::conv2d_output_shape(input, weight().shape(), params_);
}

void Conv2d::run_forward(const Context& ctx, const Tensor& x, const Tensor& w, Tensor& y) {
  kernels::conv2d_forward(ctx, x, w, bias(), y, params_, relu());
}

void Conv2d::run_backward_weights(const Context& ctx, const Tensor& x, const Tensor& dy,
                                  Tensor& dw, Tensor& db, bool accumulate) {
  kernels::conv2d_backward_weights(ctx, x, dy, dw, db, params_, accumulate);
}

void Conv2d::run_backward_data(const Context& ctx, const Tensor& dy, const Tensor& w, Tensor& dx) {
  kernels::conv2d_backward_data(ctx, dy, w, dx, params_);
}

std::int64_t Conv2d::backward_group(const Context& ctx, const Shape& x) const {
  return kernels::conv2d_sample_group(ctx, x, weight().shape(), params_);
}

}  // namespace dpt::nn
