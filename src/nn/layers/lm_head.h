// SPDX-License-Identifier: MIT
// TiedLmHead: logits [B,T,V] = h [B,T,C] wte^T with the token embedding's own weight (GPT-2 ties
// them; nanoGPT's lm_head.weight is transformer.wte.weight). The head owns no parameter: in
// backward it writes wte's gradient (or adds to it under accumulation), and the embedding, whose
// backward comes last, adds its own share; wte is reported ready once, with the embedding.
#pragma once

#include "nn/module.h"

namespace dpt::nn {

class TiedLmHead final : public Module {
 public:
  // `weight` is the embedding's parameter [V,C]; it must outlive the head (both live in the same
  // model).
  explicit TiedLmHead(Parameter& weight) : weight_(weight) {}

  std::string describe() const override;
  Shape output_shape(const Shape& input) const override;
  Tensor forward(const Context& ctx, const Tensor& x, const StepInfo& info) override;
  Tensor backward(const Context& ctx, const Tensor& dy, const StepInfo& info,
                  bool need_dx) override;

  void saved_for_backward(std::vector<const Tensor*>& out) const override {
    if (input_.defined()) out.push_back(&input_);
  }

 private:
  Parameter& weight_;
  Tensor input_;  // saved by a training forward
};

}  // namespace dpt::nn
