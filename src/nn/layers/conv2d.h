// SPDX-License-Identifier: MIT
// Conv2d over NCHW with W [out, in, kh, kw] (PyTorch layout), optionally with a fused ReLU.
#pragma once

#include "kernels/ops.h"
#include "nn/layers/weight_layer.h"

namespace dpt::nn {

class Conv2d final : public WeightLayer {
 public:
  Conv2d(std::int64_t in_channels, std::int64_t out_channels, int kernel, int stride = 1,
         int padding = 0, bool bias = true);

  std::string describe() const override;
  Shape output_shape(const Shape& input) const override;

 private:
  void run_forward(const Context& ctx, const Tensor& x, const Tensor& w, Tensor& y) override;
  void run_backward_weights(const Context& ctx, const Tensor& x, const Tensor& dy, Tensor& dw,
                            Tensor& db, bool accumulate) override;
  void run_backward_data(const Context& ctx, const Tensor& dy, const Tensor& w,
                         Tensor& dx) override;
  std::int64_t backward_group(const Context& ctx, const Shape& x) const override;

  std::int64_t in_channels_, out_channels_;
  int kernel_;
  kernels::Conv2dParams params_;
};

}  // namespace dpt::nn
