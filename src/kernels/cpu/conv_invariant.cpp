// SPDX-License-Identifier: MIT
// Convolution in thread-invariant mode (Note [Thread-invariant kernels]): the batch is cut into
// groups of kConvGroup samples, each run by a one-thread oneDNN primitive of the worker that takes
// it; backward-weights adds the groups' partial gradients in group order.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "kernels/cpu/backend_state.h"
#include "kernels/cpu/conv_primitives.h"
#include "kernels/cpu/invariant.h"
#include "runtime/check.h"

namespace dpt::kernels::cpu {
namespace {

// A worker's own primitive (built for one thread) and stream: workers run concurrently, and each
// primitive's operands and scratchpad serve one execution at a time.
template <typename Entry>
struct WorkerEntry : CacheEntry {
  std::unique_ptr<Entry> entry;
  dnnl::stream stream;
};

// The batch in groups: `count` groups of kConvGroup samples, the last one of `tail` samples when
// kConvGroup does not divide n.
struct Groups {
  std::int64_t count = 0, tail = 0;
  explicit Groups(std::int64_t n)
      : count((n + kConvGroup - 1) / kConvGroup), tail(n % kConvGroup) {}
  bool is_tail(std::int64_t group) const { return tail != 0 && group == count - 1; }
  bool has_full() const { return count > (tail != 0 ? 1 : 0); }
};

ConvShape with_batch(const ConvShape& s, std::int64_t n) {
  ConvShape g = s;
  g.n = n;
  return g;
}

// Workers [0, workers)'s primitives for group shape g, built by make(g) on first use while
// OpenMP's thread count is 1, so that each is configured for the one thread that will run it.
template <typename Entry, typename Make>
std::vector<WorkerEntry<Entry>*> worker_entries(CpuBackendState& st, const char* key_op,
                                                const char* op, const ConvShape& g, int flags,
                                                int workers, Make&& make) {
  std::vector<WorkerEntry<Entry>*> entries;
  const OmpThreads one_thread(1);
  const std::string key = conv_key(key_op, g, flags);
  for (int w = 0; w < workers; ++w) {
    entries.push_back(&st.cached<WorkerEntry<Entry>>(detail::str(key, "@worker", w), op, [&] {
      auto e = std::make_unique<WorkerEntry<Entry>>();
      e->entry = make(g);
      e->stream = dnnl::stream(st.engine());
      return e;
    }));
  }
  return entries;
}

// The primitives of full groups and of the tail group (empty when there is none).
template <typename Entry>
struct GroupEntries {
  std::vector<WorkerEntry<Entry>*> full, tail;
};

template <typename Entry, typename Make>
GroupEntries<Entry> group_entries(CpuBackendState& st, const char* key_op, const char* op,
                                  const ConvShape& s, int flags, const Groups& groups, int workers,
                                  Make&& make) {
  GroupEntries<Entry> e;
  if (groups.has_full()) {
    e.full = worker_entries<Entry>(st, key_op, op, with_batch(s, kConvGroup), flags, workers, make);
  }
  if (groups.tail != 0) {
    e.tail =
        worker_entries<Entry>(st, key_op, op, with_batch(s, groups.tail), flags, workers, make);
  }
  return e;
}

// Scratch for the groups' partial weight gradients, kept across calls.
struct Partials : CacheEntry {
  std::vector<float> data;
};

}  // namespace

void conv2d_forward_invariant(const Context& ctx, const ConvShape& s, const float* x,
                              const float* w, const float* b, float* y, bool relu) {
  CpuBackendState& st = state_of(ctx);
  const bool bias = b != nullptr;
  const Groups groups(s.n);
  const int workers = block_workers(ctx, groups.count);
  auto make = [&](const ConvShape& g) { return make_conv_forward(st.engine(), g, bias, relu); };
  const auto e = group_entries<ConvForward>(st, "conv_fwd_1t", "conv2d_forward", s, bias * 2 + relu,
                                            groups, workers, make);
  // Each worker reorders the weights once per call and primitive.
  std::vector<char> weights_ready(static_cast<std::size_t>(2 * workers), 0);
  const std::int64_t in = s.c * s.h * s.w, out = s.o * s.oh * s.ow;
  parallel_blocks(ctx, groups.count, [&](std::int64_t group, int worker) {
    const bool tail = groups.is_tail(group);
    WorkerEntry<ConvForward>& we = *(tail ? e.tail : e.full)[static_cast<std::size_t>(worker)];
    char& ready = weights_ready[static_cast<std::size_t>(2 * worker + tail)];
    const std::int64_t first = group * kConvGroup;
    we.entry->run(we.stream, x + first * in, w, b, y + first * out, ready == 0);
    ready = 1;
  });
}

void conv2d_backward_data_invariant(const Context& ctx, const ConvShape& s, const float* dy,
                                    const float* w, float* dx) {
  CpuBackendState& st = state_of(ctx);
  const Groups groups(s.n);
  const int workers = block_workers(ctx, groups.count);
  auto make = [&](const ConvShape& g) { return make_conv_backward_data(st.engine(), g); };
  const auto e = group_entries<ConvBackwardData>(st, "conv_bwd_data_1t", "conv2d_backward_data", s,
                                                 0, groups, workers, make);
  std::vector<char> weights_ready(static_cast<std::size_t>(2 * workers), 0);
  const std::int64_t in = s.c * s.h * s.w, out = s.o * s.oh * s.ow;
  parallel_blocks(ctx, groups.count, [&](std::int64_t group, int worker) {
    const bool tail = groups.is_tail(group);
    WorkerEntry<ConvBackwardData>& we = *(tail ? e.tail : e.full)[static_cast<std::size_t>(worker)];
    char& ready = weights_ready[static_cast<std::size_t>(2 * worker + tail)];
    const std::int64_t first = group * kConvGroup;
    we.entry->run(we.stream, dy + first * out, w, dx + first * in, ready == 0);
    ready = 1;
  });
}

void conv2d_backward_weights_invariant(const Context& ctx, const ConvShape& s, const float* x,
                                       const float* dy, float* dw, float* db, bool accumulate) {
  CpuBackendState& st = state_of(ctx);
  const bool bias = db != nullptr;
  const Groups groups(s.n);
  if (groups.count == 0) {  // an empty batch: the gradient is zero
    if (!accumulate) {
      std::fill(dw, dw + s.o * s.c * s.kh * s.kw, 0.0f);
      if (bias) std::fill(db, db + s.o, 0.0f);
    }
    return;
  }
  const int workers = block_workers(ctx, groups.count);
  auto make = [&](const ConvShape& g) {
    return make_conv_backward_weights(st.engine(), g, bias, false);
  };
  const auto e = group_entries<ConvBackwardWeights>(
      st, "conv_bwd_weights_1t", "conv2d_backward_weights", s, bias, groups, workers, make);
  // Group g's dw (OIHW) then db at partials + g * stride.
  const std::int64_t wn = s.o * s.c * s.kh * s.kw, stride = wn + (bias ? s.o : 0);
  auto& scratch = st.cached<Partials>("conv_bwd_weights_partials", "conv2d_backward_weights",
                                      [] { return std::make_unique<Partials>(); });
  const auto needed = static_cast<std::size_t>(groups.count * stride);
  if (scratch.data.size() < needed) scratch.data.resize(needed);
  float* const partials = scratch.data.data();
  const std::int64_t in = s.c * s.h * s.w, out = s.o * s.oh * s.ow;
  parallel_blocks(ctx, groups.count, [&](std::int64_t group, int worker) {
    WorkerEntry<ConvBackwardWeights>& we =
        *(groups.is_tail(group) ? e.tail : e.full)[static_cast<std::size_t>(worker)];
    const std::int64_t first = group * kConvGroup;
    float* const part = partials + group * stride;
    we.entry->run(we.stream, s.o, x + first * in, dy + first * out, part,
                  bias ? part + wn : nullptr);
  });
  // Sum over groups in group order, element by element (any split of the elements among threads
  // gives the same bits), into group 0's slot; then write or add.
  constexpr std::int64_t kChunk = 4096;
  const std::int64_t chunks = (stride + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) num_threads(ctx.threads()) if (chunks > 1)
  for (std::int64_t c = 0; c < chunks; ++c) {
    const std::int64_t begin = c * kChunk, end = std::min(begin + kChunk, stride);
    for (std::int64_t group = 1; group < groups.count; ++group) {
      const float* part = partials + group * stride;
      for (std::int64_t i = begin; i < end; ++i) partials[i] += part[i];
    }
    const std::int64_t w_end = std::min(end, wn);
    for (std::int64_t i = begin; i < w_end; ++i)
      dw[i] = accumulate ? dw[i] + partials[i] : partials[i];
    for (std::int64_t i = std::max(begin, wn); i < end; ++i) {
      db[i - wn] = accumulate ? db[i - wn] + partials[i] : partials[i];
    }
  }
}

}  // namespace dpt::kernels::cpu
