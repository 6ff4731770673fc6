// SPDX-License-Identifier: MIT
// Chain and Residual: children in order, nested names, the residual sum and its gradient.
#include "nn/chain.h"

#include "kernels/ops.h"
#include "nn/layers/simple.h"

namespace dpt::nn {

Chain& Chain::add(std::string name, std::unique_ptr<Module> child) {
  DPT_CHECK(child != nullptr, kind_, ": child '", name, "' is null");
  auto* relu = dynamic_cast<ReLU*>(child.get());
  if (relu != nullptr && !children_.empty() && children_.back().second->fuse_relu()) {
    relu->set_fused();
  }
  // Names nest at construction: a child is complete when added, so its own children have
  // already prefixed theirs and each level adds one prefix.
  if (!name.empty()) {
    for (Parameter* p : child->parameters()) p->name = name + "." + p->name;
  }
  children_.emplace_back(std::move(name), std::move(child));
  return *this;
}

// Named children by their names (the summary's lines stay short: "Block(x + Residual(ln_1,
// attn), x + Residual(ln_2, mlp))"), unnamed ones by what they are.
std::string Chain::describe() const {
  std::string text = kind_ + "(";
  for (std::size_t i = 0; i < children_.size(); ++i) {
    if (i > 0) text += ", ";
    text += children_[i].first.empty() ? children_[i].second->describe() : children_[i].first;
  }
  return text + ")";
}

Shape Chain::output_shape(const Shape& input) const {
  Shape shape = input;
  for (const auto& [name, child] : children_) shape = child->output_shape(shape);
  return shape;
}

Tensor Chain::forward(const Context& ctx, const Tensor& x, const StepInfo& info) {
  Tensor h = x;
  for (auto& [name, child] : children_) h = child->forward(ctx, h, info);
  return h;
}

Tensor Chain::backward(const Context& ctx, const Tensor& dy, const StepInfo& info, bool need_dx) {
  Tensor g = dy;
  for (std::size_t i = children_.size(); i-- > 0;) {
    g = children_[i].second->backward(ctx, g, info, /*need_dx=*/i > 0 || need_dx);
  }
  return g;
}

std::vector<Parameter*> Chain::parameters() {
  std::vector<Parameter*> all;
  for (auto& [name, child] : children_) {
    for (Parameter* p : child->parameters()) all.push_back(p);
  }
  return all;
}

void Chain::saved_for_backward(std::vector<const Tensor*>& out) const {
  for (const auto& [name, child] : children_) child->saved_for_backward(out);
}

int Chain::assign_indices(int first) {
  int next = Module::assign_indices(first);
  for (auto& [name, child] : children_) next = child->assign_indices(next);
  return next;
}

std::string Residual::describe() const { return "x + " + Chain::describe(); }

Shape Residual::output_shape(const Shape& input) const {
  const Shape out = Chain::output_shape(input);
  DPT_CHECK(out == input, "module ", index(), " ", describe(), ": the branch maps ",
            to_string(input), " to ", to_string(out), "; a residual sum needs the same shape");
  return out;
}

Tensor Residual::forward(const Context& ctx, const Tensor& x, const StepInfo& info) {
  const Tensor branch = Chain::forward(ctx, x, info);
  // A new tensor, not branch += x: the branch's last module may keep its output for backward.
  Tensor y = Tensor::empty(x.shape(), DType::kF32, x.device());
  kernels::add(ctx, x, branch, y);
  return y;
}

Tensor Residual::backward(const Context& ctx, const Tensor& dy, const StepInfo& info,
                          bool need_dx) {
  const Tensor branch_dx = Chain::backward(ctx, dy, info, need_dx);
  if (!need_dx) return Tensor();
  // dy reaches x twice: directly and through the branch.
  Tensor dx = Tensor::empty(dy.shape(), DType::kF32, dy.device());
  kernels::add(ctx, dy, branch_dx, dx);
  return dx;
}

}  // namespace dpt::nn
