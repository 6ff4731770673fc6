// SPDX-License-Identifier: MIT
// SGD and AdamW steps: one thread per element calling sgd_update / adamw_update
// (kernels/optim_math.h) with the per-step coefficients computed on the host by sgd_coeffs /
// adamw_coeffs, exactly as kernels/cpu/optim.cpp does. With --fmad=false and IEEE sqrt/division
// (nvcc's defaults -prec-sqrt=true -prec-div=true) the update is bitwise the CPU's.
#include <cstdint>

#include "kernels/cuda/grid.cuh"
#include "kernels/cuda/kernels_cuda.h"
#include "kernels/cuda/launch.h"
#include "kernels/optim_math.h"

namespace dpt::kernels::cuda {
namespace {

__global__ void sgd_kernel(float* param, const float* grad, float* momentum_buf, std::int64_t n,
                           SgdCoeffs c, bool first_step) {
  for (std::int64_t i = grid_start(); i < n; i += grid_stride()) {
    // No momentum: buf is never read, but sgd_update still takes an address.
    float dummy = 0.0f;
    sgd_update(&param[i], grad[i], momentum_buf != nullptr ? &momentum_buf[i] : &dummy, c,
               first_step);
  }
}

__global__ void adamw_kernel(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                             std::int64_t n, AdamWCoeffs c) {
  for (std::int64_t i = grid_start(); i < n; i += grid_stride()) {
    adamw_update(&param[i], grad[i], &exp_avg[i], &exp_avg_sq[i], c);
  }
}

}  // namespace

void sgd_step(const Context& ctx, float* param, const float* grad, float* momentum_buf,
              std::int64_t n, const SgdHyper& h, bool first_step) {
  if (n == 0) return;
  const SgdCoeffs c =
      sgd_coeffs(h.lr, h.momentum, h.dampening, h.weight_decay, h.nesterov, h.grad_scale);
  sgd_kernel<<<blocks_for(n), kThreads, 0, stream_of(ctx)>>>(param, grad, momentum_buf, n, c,
                                                             first_step);
  DPT_CUDA_CHECK_LAUNCH();
}

void adamw_step(const Context& ctx, float* param, const float* grad, float* exp_avg,
                float* exp_avg_sq, std::int64_t n, const AdamWHyper& h, std::int64_t step_count) {
  if (n == 0) return;
  const AdamWCoeffs c =
      adamw_coeffs(h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, step_count, h.grad_scale);
  adamw_kernel<<<blocks_for(n), kThreads, 0, stream_of(ctx)>>>(param, grad, exp_avg, exp_avg_sq, n,
                                                               c);
  DPT_CUDA_CHECK_LAUNCH();
}

}  // namespace dpt::kernels::cuda
