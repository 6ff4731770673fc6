// SPDX-License-Identifier: MIT
// Optimizers over the model's flat parameter and gradient buffers: one kernel call per step.
// Semantics are PyTorch's (torch.optim.SGD, torch.optim.AdamW); the math is in
// src/kernels/optim_math.h, shared with the CUDA kernels.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "kernels/ops.h"

namespace dpt::nn {

enum class OptimizerKind { kSgd, kAdamW };

struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::kAdamW;
  float momentum = 0.0f;      // SGD
  float dampening = 0.0f;     // SGD
  bool nesterov = false;      // SGD
  float beta1 = 0.9f;         // AdamW
  float beta2 = 0.999f;       // AdamW
  float eps = 1e-8f;          // AdamW
  float weight_decay = 0.0f;  // SGD: L2 added to the gradient; AdamW: decoupled decay
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // Updates params in place from grads with learning rate lr; advances step_count().
  virtual void step(const Context& ctx, Tensor& params, const Tensor& grads, float lr) = 0;
  // "sgd" or "adamw".
  virtual std::string kind_name() const = 0;
  // State slots with PyTorch's names ("momentum_buffer"; "exp_avg", "exp_avg_sq"), each flat and
  // laid out like the parameters. Empty for plain SGD.
  virtual std::vector<std::string> slot_names() const = 0;
  virtual Tensor& slot(const std::string& name) = 0;

  std::int64_t step_count() const { return step_count_; }
  void set_step_count(std::int64_t count) { step_count_ = count; }

 protected:
  std::int64_t step_count_ = 0;
};

std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& config, std::int64_t numel);

// PyTorch's clip_grad_norm_: scales grads so their global L2 norm is at most max_norm. Returns the
// norm before clipping. The norm is reduced in a fixed order (deterministic).
double clip_grad_norm(const Context& ctx, Tensor& grads, double max_norm);

}  // namespace dpt::nn
