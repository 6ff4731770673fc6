// SPDX-License-Identifier: MIT
// Convolution forward (bias + ReLU fused), backward-data and backward-weights (+ bias) on oneDNN:
// one cached primitive per shape, run on all of the Context's threads. In thread-invariant mode
// the work goes to conv_invariant.cpp instead.
#include "kernels/cpu/backend_state.h"
#include "kernels/cpu/conv_primitives.h"
#include "kernels/cpu/invariant.h"
#include "kernels/cpu/kernels_cpu.h"

namespace dpt::kernels::cpu {

void conv2d_forward(const Context& ctx, const ConvShape& s, const float* x, const float* w,
                    const float* b, float* y, bool relu) {
  if (ctx.thread_invariant()) return conv2d_forward_invariant(ctx, s, x, w, b, y, relu);
  CpuBackendState& st = state_of(ctx);
  const bool bias = b != nullptr;
  auto& e = st.cached<ConvForward>(conv_key("conv_fwd", s, bias * 2 + relu), "conv2d_forward",
                                   [&] { return make_conv_forward(st.engine(), s, bias, relu); });
  e.run(st.stream(), x, w, b, y);
}

void conv2d_backward_data(const Context& ctx, const ConvShape& s, const float* dy, const float* w,
                          float* dx) {
  if (ctx.thread_invariant()) return conv2d_backward_data_invariant(ctx, s, dy, w, dx);
  CpuBackendState& st = state_of(ctx);
  auto& e = st.cached<ConvBackwardData>(conv_key("conv_bwd_data", s, 0), "conv2d_backward_data",
                                        [&] { return make_conv_backward_data(st.engine(), s); });
  e.run(st.stream(), dy, w, dx);
}

void conv2d_backward_weights(const Context& ctx, const ConvShape& s, const float* x,
                             const float* dy, float* dw, float* db, bool accumulate) {
  if (ctx.thread_invariant()) {
    return conv2d_backward_weights_invariant(ctx, s, x, dy, dw, db, accumulate);
  }
  CpuBackendState& st = state_of(ctx);
  const bool bias = db != nullptr;
  auto& e = st.cached<ConvBackwardWeights>(
      conv_key("conv_bwd_weights", s, bias * 2 + accumulate), "conv2d_backward_weights",
      [&] { return make_conv_backward_weights(st.engine(), s, bias, accumulate); });
  e.run(st.stream(), s.o, x, dy, dw, db);
}

}  // namespace dpt::kernels::cpu
