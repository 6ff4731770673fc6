// SPDX-License-Identifier: MIT
// SGD and AdamW over flat buffers, and gradient-norm clipping.
#include "nn/optim/optimizer.h"

#include <algorithm>
#include <cmath>

namespace dpt::nn {
namespace {

class Sgd final : public Optimizer {
 public:
  Sgd(const OptimizerConfig& c, std::int64_t numel, Device device) : config_(c) {
    if (c.momentum > 0.0) momentum_ = Tensor::zeros({numel}, DType::kF32, device);
  }
  void step(const Context& ctx, Tensor& params, const Tensor& grads, double lr,
            double grad_scale) override {
    const kernels::SgdHyper h{lr,           config_.momentum, config_.dampening, config_.weight_decay,
                              config_.nesterov, grad_scale};
    kernels::sgd_step(ctx, params, grads, momentum_, h, step_count_ == 0);
    ++step_count_;
  }
  std::string kind_name() const override { return "sgd"; }
  std::vector<std::string> slot_names() const override {
    if (momentum_.defined()) return {"momentum_buffer"};
    return {};
  }
  Tensor& slot(const std::string& name) override {
    DPT_CHECK(name == "momentum_buffer" && momentum_.defined(), "sgd: no optimizer slot '", name,
              "'");
    return momentum_;
  }

 private:
  OptimizerConfig config_;
  Tensor momentum_;
};

class AdamW final : public Optimizer {
 public:
  AdamW(const OptimizerConfig& c, std::int64_t numel, Device device)
      : config_(c),
        exp_avg_(Tensor::zeros({numel}, DType::kF32, device)),
        exp_avg_sq_(Tensor::zeros({numel}, DType::kF32, device)) {}
  void step(const Context& ctx, Tensor& params, const Tensor& grads, double lr,
            double grad_scale) override {
    const kernels::AdamWHyper h{lr,          config_.beta1,        config_.beta2,
                                config_.eps, config_.weight_decay, grad_scale};
    ++step_count_;
    kernels::adamw_step(ctx, params, grads, exp_avg_, exp_avg_sq_, h, step_count_);
  }
  std::string kind_name() const override { return "adamw"; }
  std::vector<std::string> slot_names() const override { return {"exp_avg", "exp_avg_sq"}; }
  Tensor& slot(const std::string& name) override {
    if (name == "exp_avg") return exp_avg_;
    DPT_CHECK(name == "exp_avg_sq", "adamw: no optimizer slot '", name, "'");
    return exp_avg_sq_;
  }

 private:
  OptimizerConfig config_;
  Tensor exp_avg_, exp_avg_sq_;
};

}  // namespace

std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& config, std::int64_t numel,
                                          Device device) {
  DPT_CHECK(config.weight_decay >= 0.0, "optimizer: weight decay must be >= 0, got ",
            config.weight_decay);
  switch (config.kind) {
    case OptimizerKind::kSgd:
      DPT_CHECK(config.momentum >= 0.0 && config.momentum < 1.0,
                "sgd: momentum must be in [0, 1), got ", config.momentum);
      DPT_CHECK(!config.nesterov || (config.momentum > 0.0 && config.dampening == 0.0),
                "sgd: nesterov needs momentum > 0 and dampening 0");
      return std::make_unique<Sgd>(config, numel, device);
    case OptimizerKind::kAdamW:
      DPT_CHECK(config.beta1 >= 0.0 && config.beta1 < 1.0 && config.beta2 >= 0.0 &&
                    config.beta2 < 1.0,
                "adamw: betas must be in [0, 1), got ", config.beta1, ", ", config.beta2);
      DPT_CHECK(config.eps > 0.0, "adamw: eps must be > 0, got ", config.eps);
      return std::make_unique<AdamW>(config, numel, device);
  }
  DPT_FAIL("optimizer: unknown kind");
}

GradClip clip_grad_norm(const Context& ctx, const Tensor& grads, double grad_scale,
                        double max_norm) {
  return clip_from_sum_squares(kernels::sum_squares(ctx, grads), grad_scale, max_norm);
}

GradClip clip_from_sum_squares(double sum_squares, double grad_scale, double max_norm) {
  DPT_CHECK(max_norm > 0.0, "clip_grad_norm: max_norm must be > 0, got ", max_norm);
  GradClip clip;
  clip.norm = std::sqrt(sum_squares) * std::abs(grad_scale);
  // torch.nn.utils.clip_grad_norm_: coefficient max_norm / (norm + 1e-6), applied only when < 1.
  clip.coefficient = std::min(1.0, max_norm / (clip.norm + 1e-6));
  return clip;
}

}  // namespace dpt::nn
