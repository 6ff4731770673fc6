// SPDX-License-Identifier: MIT
// SGD and AdamW steps: OpenMP loops over the per-element updates of kernels/optim_math.h.
#include "kernels/cpu/kernels_cpu.h"
#include "kernels/optim_math.h"

namespace dpt::kernels::cpu {
namespace {
constexpr std::int64_t kParallelMin = 1 << 14;
}  // namespace

void sgd_step(float* param, const float* grad, float* momentum_buf, std::int64_t n,
              const SgdHyper& h, bool first_step) {
  const SgdCoeffs c =
      sgd_coeffs(h.lr, h.momentum, h.dampening, h.weight_decay, h.nesterov, h.grad_scale);
  float dummy = 0.0f;
  if (momentum_buf == nullptr) {
    // No momentum: buf is never read, but each element still needs a valid address.
#pragma omp parallel for schedule(static) if (n >= kParallelMin) firstprivate(dummy)
    for (std::int64_t i = 0; i < n; ++i) sgd_update(&param[i], grad[i], &dummy, c, first_step);
    return;
  }
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) {
    sgd_update(&param[i], grad[i], &momentum_buf[i], c, first_step);
  }
}

void adamw_step(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                std::int64_t n, const AdamWHyper& h, std::int64_t step_count) {
  const AdamWCoeffs c = adamw_coeffs(h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, step_count,
                                          h.grad_scale);
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) {
    adamw_update(&param[i], grad[i], &exp_avg[i], &exp_avg_sq[i], c);
  }
}

}  // namespace dpt::kernels::cpu
