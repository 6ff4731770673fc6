// SPDX-License-Identifier: MIT
// LayerNorm over the last dimension (torch.nn.LayerNorm(C, eps=1e-5), nanoGPT's with an optional
// bias): "weight" starts at ones, "bias" at zeros.
#pragma once

#include "nn/module.h"

namespace dpt::nn {

class LayerNorm final : public Module {
 public:
  explicit LayerNorm(std::int64_t channels, bool bias = true, float eps = 1e-5f);

  std::string describe() const override;
  Shape output_shape(const Shape& input) const override;
  Tensor forward(const Context& ctx, const Tensor& x, const StepInfo& info) override;
  Tensor backward(const Context& ctx, const Tensor& dy, const StepInfo& info,
                  bool need_dx) override;
  std::vector<Parameter*> parameters() override;

  void saved_for_backward(std::vector<const Tensor*>& out) const override {
    if (input_.defined()) out.push_back(&input_);
    if (mean_.defined()) out.push_back(&mean_);
    if (rstd_.defined()) out.push_back(&rstd_);
  }

 private:
  std::int64_t channels_;
  float eps_;
  Parameter weight_, bias_;
  Tensor input_, mean_, rstd_;  // saved by a training forward
};

}  // namespace dpt::nn
