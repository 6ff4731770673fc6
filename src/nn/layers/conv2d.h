// SPDX-License-Identifier: MIT
// Conv2d over NCHW with W [out, in, kh, kw] (PyTorch layout), optionally with a fused ReLU.
#pragma once

#include "kernels/ops.h"
#include "nn/module.h"

namespace dpt::nn {

class Conv2d final : public Module {
 public:
  Conv2d(std::int64_t in_channels, std::int64_t out_channels, int kernel, int stride = 1,
         int padding = 0, bool bias = true);

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
  std::int64_t in_channels_, out_channels_;
  int kernel_;
  kernels::Conv2dParams params_;
  bool has_bias_;
  bool relu_ = false;
  Parameter weight_, bias_;
  Tensor input_, output_;
};

}  // namespace dpt::nn
