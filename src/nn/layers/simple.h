// SPDX-License-Identifier: MIT
// Parameter-free layers: ReLU, MaxPool2d, Flatten, GELU, Dropout.
#pragma once

#include "kernels/ops.h"
#include "nn/module.h"

namespace dpt::nn {

// ReLU. When the previous layer fused it into its kernel, this module passes tensors through and
// stays in the Sequential only so that indices and names match PyTorch's.
class ReLU final : public Module {
 public:
  std::string describe() const override { return fused_ ? "ReLU(fused)" : "ReLU"; }
  Shape output_shape(const Shape& input) const override { return input; }
  Tensor forward(const Context& ctx, const Tensor& x, const StepInfo& info) override;
  Tensor backward(const Context& ctx, const Tensor& dy, const StepInfo& info, bool need_dx) override;
  void set_fused() { fused_ = true; }
  bool fused() const { return fused_; }

  void saved_for_backward(std::vector<const Tensor*>& out) const override {
    if (output_.defined()) out.push_back(&output_);
  }

 private:
  bool fused_ = false;
  Tensor output_;
};

class MaxPool2d final : public Module {
 public:
  explicit MaxPool2d(int kernel, int stride = 0, int padding = 0);
  std::string describe() const override;
  Shape output_shape(const Shape& input) const override;
  Tensor forward(const Context& ctx, const Tensor& x, const StepInfo& info) override;
  Tensor backward(const Context& ctx, const Tensor& dy, const StepInfo& info, bool need_dx) override;

  void saved_for_backward(std::vector<const Tensor*>& out) const override {
    if (workspace_.defined()) out.push_back(&workspace_);
  }

 private:
  kernels::Pool2dParams params_;
  Shape input_shape_;
  Tensor workspace_;
};

// Flattens [N, ...] to [N, prod(...)]: a reshape, no copy.
class Flatten final : public Module {
 public:
  std::string describe() const override { return "Flatten"; }
  Shape output_shape(const Shape& input) const override;
  Tensor forward(const Context& ctx, const Tensor& x, const StepInfo& info) override;
  Tensor backward(const Context& ctx, const Tensor& dy, const StepInfo& info, bool need_dx) override;

 private:
  Shape input_shape_;
};

// GELU, tanh form (GPT-2's; torch.nn.GELU(approximate="tanh")).
class Gelu final : public Module {
 public:
  std::string describe() const override { return "GELU(tanh)"; }
  Shape output_shape(const Shape& input) const override { return input; }
  Tensor forward(const Context& ctx, const Tensor& x, const StepInfo& info) override;
  Tensor backward(const Context& ctx, const Tensor& dy, const StepInfo& info,
                  bool need_dx) override;

  void saved_for_backward(std::vector<const Tensor*>& out) const override {
    if (input_.defined()) out.push_back(&input_);
  }

 private:
  Tensor input_;
};

// Dropout with inverted scaling; the mask of a sample depends on (seed, step, layer, global sample
// index) only, so it is the same whatever the micro-batch split or world size.
class Dropout final : public Module {
 public:
  explicit Dropout(float p);
  std::string describe() const override;
  Shape output_shape(const Shape& input) const override { return input; }
  Tensor forward(const Context& ctx, const Tensor& x, const StepInfo& info) override;
  Tensor backward(const Context& ctx, const Tensor& dy, const StepInfo& info, bool need_dx) override;

  void saved_for_backward(std::vector<const Tensor*>& out) const override {
    if (mask_.defined()) out.push_back(&mask_);
  }

 private:
  float p_;
  Tensor mask_;
};

}  // namespace dpt::nn
