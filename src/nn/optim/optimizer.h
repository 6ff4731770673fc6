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
  double momentum = 0.0;      // SGD
  double dampening = 0.0;     // SGD
  bool nesterov = false;      // SGD
  double beta1 = 0.9;         // AdamW
  double beta2 = 0.999;       // AdamW
  double eps = 1e-8;          // AdamW
  double weight_decay = 0.0;  // SGD: L2 added to the gradient; AdamW: decoupled decay
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // Updates params in place from grad_scale * grads with learning rate lr (grads are not
  // modified); advances step_count().
  virtual void step(const Context& ctx, Tensor& params, const Tensor& grads, double lr,
                    double grad_scale = 1.0) = 0;
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

// State slots (momentum, moments) live on `device`, beside the parameters they update.
std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& config, std::int64_t numel,
                                          Device device = Device::cpu());

// PyTorch's clip_grad_norm_ for the gradients g = grad_scale * grads: their global L2 norm and the
// factor that brings it to at most max_norm (max_norm / (norm + 1e-6) when below 1, else 1). The
// factor is meant to be multiplied into the optimizer's grad_scale, so clipping costs one read of
// the gradients. The norm is reduced in a fixed order (deterministic).
struct GradClip {
  double norm = 0.0;
  double coefficient = 1.0;
};
GradClip clip_grad_norm(const Context& ctx, const Tensor& grads, double grad_scale, double max_norm);
// The same from the gradients' sum of squares (kernels::sum_squares, or a sharded optimizer's
// DataParallel::gradient_sum_squares).
GradClip clip_from_sum_squares(double sum_squares, double grad_scale, double max_norm);

}  // namespace dpt::nn
