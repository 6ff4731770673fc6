// SPDX-License-Identifier: MIT
// Modules made of modules. Chain runs named children in order (a block, a transformer's attention
// or MLP); Residual is a Chain whose input is added to its output (x + f(x)). Parameters stay where
// their leaves keep them, so the model still places every one of them in its flat buffers, and
// their names nest as PyTorch's do: a child named "attn" holding a child "c_attn" gives
// "attn.c_attn.weight". A child added with an empty name adds no level ("" for a Residual that
// only groups "ln_1" and "attn" of a GPT block, as nanoGPT writes x + attn(ln_1(x)) inline).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "nn/module.h"

namespace dpt::nn {

class Chain : public Module {
 public:
  // `kind` is what describe() calls the chain ("Block", "MLP").
  explicit Chain(std::string kind) : kind_(std::move(kind)) {}

  // Appends a child; its parameter names get the prefix "<name>." (none when name is empty).
  // A ReLU added after a Linear or Conv2d is fused into it, as in Sequential.
  Chain& add(std::string name, std::unique_ptr<Module> child);

  std::string describe() const override;
  Shape output_shape(const Shape& input) const override;
  Tensor forward(const Context& ctx, const Tensor& x, const StepInfo& info) override;
  Tensor backward(const Context& ctx, const Tensor& dy, const StepInfo& info,
                  bool need_dx) override;
  std::vector<Parameter*> parameters() override;
  int assign_indices(int first) override;
  void saved_for_backward(std::vector<const Tensor*>& out) const override;

 private:
  std::string kind_;
  std::vector<std::pair<std::string, std::unique_ptr<Module>>> children_;
};

// y = x + chain(x); the chain's output has the input's shape.
class Residual final : public Chain {
 public:
  Residual() : Chain("Residual") {}

  std::string describe() const override;
  Shape output_shape(const Shape& input) const override;
  Tensor forward(const Context& ctx, const Tensor& x, const StepInfo& info) override;
  Tensor backward(const Context& ctx, const Tensor& dy, const StepInfo& info,
                  bool need_dx) override;
};

}  // namespace dpt::nn
