// SPDX-License-Identifier: MIT
// Linear: y = x W^T + b with W [out, in] (PyTorch layout), optionally with a fused ReLU.
#pragma once

#include "nn/layers/weight_layer.h"

namespace dpt::nn {

class Linear final : public WeightLayer {
 public:
  Linear(std::int64_t in_features, std::int64_t out_features, bool bias = true);

  std::string describe() const override;
  Shape output_shape(const Shape& input) const override;

 private:
  void run_forward(const Context& ctx, const Tensor& x, const Tensor& w, Tensor& y) override;
  void run_backward_weights(const Context& ctx, const Tensor& x, const Tensor& dy, Tensor& dw,
                            Tensor& db, bool accumulate) override;
  void run_backward_data(const Context& ctx, const Tensor& dy, const Tensor& w,
                         Tensor& dx) override;

  std::int64_t in_features_, out_features_;
};

}  // namespace dpt::nn
