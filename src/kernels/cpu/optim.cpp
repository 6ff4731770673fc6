// SPDX-License-Identifier: MIT
// SGD and AdamW steps: one vectorised pass over the flat buffers, calling the per-element updates
// of kernels/optim_math.h (Note [Optimizer loops]).
#include "kernels/cpu/kernels_cpu.h"
#include "kernels/cpu/simd_loops.h"
#include "kernels/optim_math.h"

namespace dpt::kernels::cpu {
namespace {

// Note [Optimizer loops]
// ~~~~~~~~~~~~~~~~~~~~~~
// An optimizer step reads and writes every parameter, gradient and slot once: it is bound by
// memory bandwidth (bench: dpt-kernel-bench --optimizers), provided the loop vectorises.
// - sgd_update decides per element whether weight decay, momentum, Nesterov and the first step
//   apply; those branches kept GCC from vectorising the loop (SGD with momentum ran at 1.9x its
//   bandwidth floor, plain SGD at 2.6x). The choices are loop invariants, so each variant gets a
//   loop of its own (sgd_update_as with SgdFixed): the same expressions in the same order as
//   sgd_update, so the same bits (tests/kernels/optim_test.cpp compares every variant with a
//   scalar loop over sgd_update, bit for bit).
// - The loops are compiled for AVX-512, AVX2 and the baseline (Note [SIMD clones] in
//   cpu/simd_loops.h); every clone gives the bits of the scalar math.
// - Stores are plain: every store goes to a line the same iteration has just read, so
//   non-temporal stores would save no write-allocate traffic.
// - Threads take contiguous ranges (for_thread_ranges); the update is elementwise, so the result
//   does not depend on the thread count.

// Below this many elements a parallel region costs more than it saves.
constexpr std::int64_t kParallelMin = 1 << 14;

template <class Variant>
DPT_ALWAYS_INLINE void sgd_loop(float* param, const float* grad, float* buf, std::int64_t n,
                                const SgdCoeffs& coeffs) {
  const SgdCoeffs c = coeffs;  // a local copy: stores through param cannot change it
#pragma omp simd
  for (std::int64_t i = 0; i < n; ++i) {
    sgd_update_as(Variant{}, &param[i], grad[i], Variant::momentum ? &buf[i] : nullptr, c);
  }
}

template <bool kWeightDecay>
DPT_ALWAYS_INLINE void sgd_variants(const SgdChoice& v, float* param, const float* grad, float* buf,
                                    std::int64_t n, const SgdCoeffs& c) {
  if (!v.momentum) {
    sgd_loop<SgdFixed<kWeightDecay, false, false, false>>(param, grad, buf, n, c);
  } else if (v.nesterov) {
    if (v.first_step) {
      sgd_loop<SgdFixed<kWeightDecay, true, true, true>>(param, grad, buf, n, c);
    } else {
      sgd_loop<SgdFixed<kWeightDecay, true, true, false>>(param, grad, buf, n, c);
    }
  } else if (v.first_step) {
    sgd_loop<SgdFixed<kWeightDecay, true, false, true>>(param, grad, buf, n, c);
  } else {
    sgd_loop<SgdFixed<kWeightDecay, true, false, false>>(param, grad, buf, n, c);
  }
}

DPT_SIMD_CLONES void sgd_range(float* param, const float* grad, float* buf, std::int64_t n,
                               const SgdCoeffs& c, bool first_step) {
  const SgdChoice v = sgd_choice(c, first_step);
  if (v.weight_decay) {
    sgd_variants<true>(v, param, grad, buf, n, c);
  } else {
    sgd_variants<false>(v, param, grad, buf, n, c);
  }
}

DPT_SIMD_CLONES void adamw_range(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                                 std::int64_t n, const AdamWCoeffs& coeffs) {
  const AdamWCoeffs c = coeffs;
#pragma omp simd
  for (std::int64_t i = 0; i < n; ++i) {
    adamw_update(&param[i], grad[i], &exp_avg[i], &exp_avg_sq[i], c);
  }
}

}  // namespace

void sgd_step(float* param, const float* grad, float* momentum_buf, std::int64_t n,
              const SgdHyper& h, bool first_step) {
  const SgdCoeffs c =
      sgd_coeffs(h.lr, h.momentum, h.dampening, h.weight_decay, h.nesterov, h.grad_scale);
  // dispatch.cpp passes a buffer whenever momentum != 0, and momentum == 0 rounds to 0.0f.
  DPT_ASSERT(momentum_buf != nullptr || c.momentum == 0.0f);
  for_thread_ranges(n, kParallelMin, [&](std::int64_t begin, std::int64_t end) {
    sgd_range(param + begin, grad + begin, momentum_buf == nullptr ? nullptr : momentum_buf + begin,
              end - begin, c, first_step);
  });
}

void adamw_step(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, std::int64_t n,
                const AdamWHyper& h, std::int64_t step_count) {
  const AdamWCoeffs c =
      adamw_coeffs(h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, step_count, h.grad_scale);
  for_thread_ranges(n, kParallelMin, [&](std::int64_t begin, std::int64_t end) {
    adamw_range(param + begin, grad + begin, exp_avg + begin, exp_avg_sq + begin, end - begin, c);
  });
}

}  // namespace dpt::kernels::cpu
