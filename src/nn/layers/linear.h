// SPDX-License-Identifier: MIT
// Linear: y = x W^T + b with W [out, in] (PyTorch layout), optionally with a fused ReLU.
#pragma once

#include "nn/module.h"

namespace dpt::nn {

class Linear final : public Module {
 public:
  Linear(std::int64_t in_features, std::int64_t out_features, bool bias = true);

  std::string describe() const override;
  Shape output_shape(const Shape& input) const override;
  Tensor forward(const Context& ctx, const Tensor& x, const StepInfo& info) override;
  Tensor backward(const Context& ctx, const Tensor& dy, const StepInfo& info, bool need_dx) override;
  std::vector<Parameter*> parameters() override;
  bool fuse_relu() override {
    relu_ = true;
    return true;
  }

 private:
  std::int64_t in_features_, out_features_;
  bool has_bias_;
  bool relu_ = false;
  Parameter weight_, bias_;
  Tensor input_, output_;  // saved by forward for backward
};

}  // namespace dpt::nn
