// SPDX-License-Identifier: MIT
// Convolution forward (bias + ReLU fused), backward-data and backward-weights (+ bias) on oneDNN:
// cached primitives run on all of the Context's threads, over the batch in cache-sized sample
// groups (Note [Convolution sample groups]). In thread-invariant mode the work goes to
// conv_invariant.cpp instead. The _bf16 entries run the same passes on bf16 inputs (Note [Native
// bf16 GEMMs] in linear.cpp).
#include <algorithm>
#include <type_traits>

#include "kernels/cpu/backend_state.h"
#include "kernels/cpu/conv_primitives.h"
#include "kernels/cpu/invariant.h"
#include "kernels/cpu/kernels_cpu.h"

namespace dpt::kernels::cpu {
namespace {

// Note [Convolution sample groups]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// oneDNN's fast convolutions work on channel-blocked layouts, so every call reorders its NCHW
// inputs in and its outputs out. Over a whole batch of 128 those reorders stream the activations
// through memory (the cnn's first layer: 12.8 MB out, reordered again; ONEDNN_VERBOSE showed
// reorders at about 30% of a cnn step's convolution time). Run over groups of samples whose input
// and output take at most kGroupBytes, the reorders and the primitive's own passes stay in the L2
// cache. Measured (dpt-kernel-bench, batch 128, 1 thread, Xeon with AVX-512, best of 4
// interleaved runs): every convolution op of the cnn faster, conv1 forward 2.50 -> 1.63 ms and
// backward-weights 3.23 -> 1.53 ms, conv2 7-8 ms -> 6.7-7.0 ms, the cnn's ops 56 -> 44 ms;
// 1 MiB groups measured the same as 256 KiB, which also fits the 512 KiB L2 of AVX2 EPYCs. The
// group size comes from the shape alone (never timings or the thread count), so results stay a
// function of the inputs and the thread count as before.
constexpr std::int64_t kGroupBytes = 1 << 18;

ConvShape with_batch(ConvShape s, std::int64_t n) {
  s.n = n;
  return s;
}

// Calls f(group shape, first sample) over the batch in groups.
template <typename F>
void for_each_group(const ConvShape& s, F&& f) {
  const std::int64_t g = conv_sample_group(s);
  for (std::int64_t first = 0; first < s.n; first += g) f(with_batch(s, std::min(g, s.n - first)), first);
}

}  // namespace

std::int64_t conv_sample_group(const ConvShape& s) {
  const std::int64_t per_sample =
      (s.c * s.h * s.w + s.o * s.oh * s.ow) * static_cast<std::int64_t>(sizeof(float));
  return std::clamp<std::int64_t>(kGroupBytes / std::max<std::int64_t>(per_sample, 1), 1, s.n);
}

namespace {

// The three passes over the batch in sample groups, with inputs of type In (float, or BFloat16
// for oneDNN's bf16 primitives: Note [Native bf16 GEMMs] in linear.cpp); outputs are float.
template <typename In>
void forward_groups(const Context& ctx, const ConvShape& s, const In* x, const In* w,
                    const float* b, float* y, bool relu) {
  constexpr bool bf16 = std::is_same_v<In, BFloat16>;
  CpuBackendState& st = state_of(ctx);
  const bool bias = b != nullptr;
  // Groups of one shape share a primitive: its weights are reordered for the first only.
  const ConvForward* previous = nullptr;
  for_each_group(s, [&](const ConvShape& gs, std::int64_t first) {
    auto& e = st.cached<ConvForward>(
        conv_key("conv_fwd", gs, bias * 2 + relu + bf16 * 4), "conv2d_forward",
        [&] { return make_conv_forward(st.engine(), gs, bias, relu, bf16); });
    e.run(st.stream(), x + first * s.c * s.h * s.w, w, b, y + first * s.o * s.oh * s.ow,
          &e != previous);
    previous = &e;
  });
}

template <typename In>
void backward_data_groups(const Context& ctx, const ConvShape& s, const In* dy, const In* w,
                          float* dx) {
  constexpr bool bf16 = std::is_same_v<In, BFloat16>;
  CpuBackendState& st = state_of(ctx);
  const ConvBackwardData* previous = nullptr;
  for_each_group(s, [&](const ConvShape& gs, std::int64_t first) {
    auto& e = st.cached<ConvBackwardData>(
        conv_key("conv_bwd_data", gs, bf16 * 4), "conv2d_backward_data",
        [&] { return make_conv_backward_data(st.engine(), gs, bf16); });
    e.run(st.stream(), dy + first * s.o * s.oh * s.ow, w, dx + first * s.c * s.h * s.w,
          &e != previous);
    previous = &e;
  });
}

template <typename In>
void backward_weights_groups(const Context& ctx, const ConvShape& s, const In* x, const In* dy,
                             float* dw, float* db, bool accumulate) {
  constexpr bool bf16 = std::is_same_v<In, BFloat16>;
  CpuBackendState& st = state_of(ctx);
  const bool bias = db != nullptr;
  // The first group writes (or adds, when the caller accumulates), the others add, in order.
  for_each_group(s, [&](const ConvShape& gs, std::int64_t first) {
    const bool add = accumulate || first > 0;
    auto& e = st.cached<ConvBackwardWeights>(
        conv_key("conv_bwd_weights", gs, bias * 2 + add + bf16 * 4), "conv2d_backward_weights",
        [&] { return make_conv_backward_weights(st.engine(), gs, bias, add, bf16); });
    e.run(st.stream(), s.o, x + first * s.c * s.h * s.w, dy + first * s.o * s.oh * s.ow, dw, db);
  });
}

}  // namespace

void conv2d_forward(const Context& ctx, const ConvShape& s, const float* x, const float* w,
                    const float* b, float* y, bool relu) {
  if (ctx.thread_invariant()) return conv2d_forward_invariant(ctx, s, x, w, b, y, relu);
  forward_groups(ctx, s, x, w, b, y, relu);
}

void conv2d_backward_data(const Context& ctx, const ConvShape& s, const float* dy, const float* w,
                          float* dx) {
  if (ctx.thread_invariant()) return conv2d_backward_data_invariant(ctx, s, dy, w, dx);
  backward_data_groups(ctx, s, dy, w, dx);
}

void conv2d_backward_weights(const Context& ctx, const ConvShape& s, const float* x,
                             const float* dy, float* dw, float* db, bool accumulate) {
  if (ctx.thread_invariant()) {
    return conv2d_backward_weights_invariant(ctx, s, x, dy, dw, db, accumulate);
  }
  backward_weights_groups(ctx, s, x, dy, dw, db, accumulate);
}

void conv2d_forward_bf16(const Context& ctx, const ConvShape& s, const BFloat16* x,
                         const BFloat16* w, const float* b, float* y, bool relu) {
  forward_groups(ctx, s, x, w, b, y, relu);
}

void conv2d_backward_data_bf16(const Context& ctx, const ConvShape& s, const BFloat16* dy,
                               const BFloat16* w, float* dx) {
  backward_data_groups(ctx, s, dy, w, dx);
}

void conv2d_backward_weights_bf16(const Context& ctx, const ConvShape& s, const BFloat16* x,
                                  const BFloat16* dy, float* dw, float* db, bool accumulate) {
  backward_weights_groups(ctx, s, x, dy, dw, db, accumulate);
}

}  // namespace dpt::kernels::cpu
