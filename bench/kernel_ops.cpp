// SPDX-License-Identifier: MIT
// dpt-kernel-bench: the CPU time of every op of the reference models (cnn, mlp; gpt: one block of
// a small GPT) at one shard batch, in the default mode and in thread-invariant mode
// (Context::set_thread_invariant), for the given thread counts. Each figure is the median
// (--best: the fastest) of --repeats timed calls after two warm-up calls (which also build the
// cached primitives); the two modes' calls alternate, so load from other processes falls on both
// alike.
//   build/bin/dpt-kernel-bench [--batch 32] [--threads 1 2] [--models cnn mlp] [--repeats 30]
//                              [--best]
// --optimizers instead times one optimizer step over --numel floats (SGD with momentum, SGD
// plain, AdamW) on one thread against the memory-bandwidth floor of its bytes, from a triad
// measured in the same run (Note [Optimizer floor]); --elementwise does the same for relu and
// dropout backward, axpy, scale and the cnn's first max pooling.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "cpu_description.h"
#include "kernels/ops.h"
#include "runtime/context.h"
#include "runtime/tensor.h"

namespace {

using dpt::Context;
using dpt::Shape;
using dpt::Tensor;
namespace k = dpt::kernels;
using dpt::bench::cpu_description;

Tensor random(const Shape& shape, unsigned seed) {
  Tensor t = Tensor::empty(shape);
  float* p = t.data<float>();
  unsigned state = seed * 2654435761u + 1;
  for (std::int64_t i = 0; i < t.numel(); ++i) {
    state = state * 1664525u + 1013904223u;
    p[i] = static_cast<float>(state >> 8) / static_cast<float>(1 << 24) * 2.0f - 1.0f;
  }
  return t;
}

// One op of a model: a name and the call (tensors captured by the model's setup).
struct Op {
  std::string name;
  std::function<void(const Context&)> run;
};

// The ops of a forward and backward pass of `cnn` (docs/design.md, Reference models).
std::vector<Op> cnn_ops(std::int64_t n) {
  std::vector<Op> ops;
  const k::Conv2dParams p{1, 1, 1, 1};
  const k::Pool2dParams pool{};
  struct Layer {
    std::int64_t c, o, side;
  };
  int index = 1;
  for (const Layer l : {Layer{1, 32, 28}, Layer{32, 64, 14}, Layer{64, 64, 7}}) {
    const Shape xs{n, l.c, l.side, l.side}, ws{l.o, l.c, 3, 3}, ys{n, l.o, l.side, l.side};
    auto x = std::make_shared<Tensor>(random(xs, 1)), w = std::make_shared<Tensor>(random(ws, 2));
    auto b = std::make_shared<Tensor>(random({l.o}, 3)),
         y = std::make_shared<Tensor>(Tensor::empty(ys));
    auto dy = std::make_shared<Tensor>(random(ys, 4)),
         dx = std::make_shared<Tensor>(Tensor::empty(xs));
    auto dw = std::make_shared<Tensor>(Tensor::empty(ws)),
         db = std::make_shared<Tensor>(Tensor::empty({l.o}));
    const std::string name = "conv" + std::to_string(index) + " " + std::to_string(l.c) + "->" +
                             std::to_string(l.o) + " " + std::to_string(l.side) + "x" +
                             std::to_string(l.side);
    ops.push_back({name + " fwd+relu",
                   [=](const Context& c) { k::conv2d_forward(c, *x, *w, *b, *y, p, true); }});
    ops.push_back({name + " bwd-data",
                   [=](const Context& c) { k::conv2d_backward_data(c, *dy, *w, *dx, p); }});
    ops.push_back({name + " bwd-weights", [=](const Context& c) {
                     k::conv2d_backward_weights(c, *x, *dy, *dw, *db, p, false);
                   }});
    if (index < 3) {
      const Shape ps = k::pool2d_output_shape(ys, pool);
      auto py = std::make_shared<Tensor>(Tensor::empty(ps)), ws_pool = std::make_shared<Tensor>();
      auto pdy = std::make_shared<Tensor>(random(ps, 5)),
           pdx = std::make_shared<Tensor>(Tensor::empty(ys));
      ops.push_back({"maxpool" + std::to_string(index) + " fwd", [=](const Context& c) {
                       k::max_pool2d_forward(c, *dy, *py, *ws_pool, pool);
                     }});
      ops.push_back({"maxpool" + std::to_string(index) + " bwd", [=](const Context& c) {
                       if (!ws_pool->defined()) k::max_pool2d_forward(c, *dy, *py, *ws_pool, pool);
                       k::max_pool2d_backward(c, *pdy, *ws_pool, *pdx, pool);
                     }});
    }
    ++index;
  }
  return ops;
}

// Linear layers (fwd with bias + ReLU where the model has it, bwd-data, bwd-weights with bias).
void add_linear(std::vector<Op>& ops, const std::string& name, std::int64_t n, std::int64_t in,
                std::int64_t out, bool relu) {
  auto x = std::make_shared<Tensor>(random({n, in}, 1)),
       w = std::make_shared<Tensor>(random({out, in}, 2));
  auto b = std::make_shared<Tensor>(random({out}, 3)),
       y = std::make_shared<Tensor>(Tensor::empty({n, out}));
  auto dy = std::make_shared<Tensor>(random({n, out}, 4)),
       dx = std::make_shared<Tensor>(Tensor::empty({n, in}));
  auto dw = std::make_shared<Tensor>(Tensor::empty({out, in})),
       db = std::make_shared<Tensor>(Tensor::empty({out}));
  const std::string full = name + " " + std::to_string(in) + "->" + std::to_string(out);
  ops.push_back({full + (relu ? " fwd+relu" : " fwd"),
                 [=](const Context& c) { k::linear_forward(c, *x, *w, *b, *y, relu); }});
  ops.push_back(
      {full + " bwd-data", [=](const Context& c) { k::linear_backward_data(c, *dy, *w, *dx); }});
  ops.push_back({full + " bwd-weights", [=](const Context& c) {
                   k::linear_backward_weights(c, *x, *dy, *dw, *db, false);
                 }});
}

std::vector<Op> mlp_ops(std::int64_t n) {
  std::vector<Op> ops;
  add_linear(ops, "fc1", n, 784, 2048, true);
  add_linear(ops, "fc2", n, 2048, 2048, true);
  add_linear(ops, "fc3", n, 2048, 2048, true);
  add_linear(ops, "fc4", n, 2048, 10, false);
  return ops;
}

// The kernels of one block of a small GPT (T = 64, C = 128, 4 heads, vocabulary 65) at `n`
// sequences: embedding, layer norm, causal attention (no dropout), the block's linear layers,
// GELU and the residual add.
std::vector<Op> gpt_ops(std::int64_t n) {
  constexpr std::int64_t kT = 64, kC = 128, kV = 65;
  constexpr int kHeads = 4;
  std::vector<Op> ops;
  auto tokens = std::make_shared<Tensor>(Tensor::empty({n, kT}, dpt::DType::kI32));
  for (std::int64_t i = 0; i < tokens->numel(); ++i) {
    tokens->data<std::int32_t>()[i] = static_cast<std::int32_t>((i * 7919) % kV);
  }
  auto wte = std::make_shared<Tensor>(random({kV, kC}, 1)),
       wpe = std::make_shared<Tensor>(random({kT, kC}, 2));
  auto x = std::make_shared<Tensor>(random({n, kT, kC}, 3)),
       dy = std::make_shared<Tensor>(random({n, kT, kC}, 4));
  auto y = std::make_shared<Tensor>(Tensor::empty({n, kT, kC})),
       dx = std::make_shared<Tensor>(Tensor::empty({n, kT, kC}));
  auto dwte = std::make_shared<Tensor>(Tensor::empty({kV, kC})),
       dwpe = std::make_shared<Tensor>(Tensor::empty({kT, kC}));
  ops.push_back({"embedding fwd", [=](const Context& c) { k::embedding_forward(c, *tokens, *wte, *wpe, *y); }});
  ops.push_back({"embedding bwd", [=](const Context& c) {
                   k::embedding_backward(c, *tokens, *dy, *dwte, *dwpe, false, false);
                 }});
  auto gamma = std::make_shared<Tensor>(random({kC}, 5)), beta = std::make_shared<Tensor>(random({kC}, 6));
  auto mean = std::make_shared<Tensor>(Tensor::empty({n * kT})),
       rstd = std::make_shared<Tensor>(Tensor::empty({n * kT}));
  auto dgamma = std::make_shared<Tensor>(Tensor::empty({kC})),
       dbeta = std::make_shared<Tensor>(Tensor::empty({kC}));
  ops.push_back({"layer norm fwd", [=](const Context& c) {
                   k::layer_norm_forward(c, *x, *gamma, *beta, *y, *mean, *rstd, 1e-5f);
                 }});
  ops.push_back({"layer norm bwd", [=](const Context& c) {
                   k::layer_norm_backward(c, *x, *gamma, *mean, *rstd, *dy, *dx, *dgamma, *dbeta, false);
                 }});
  add_linear(ops, "c_attn", n * kT, kC, 3 * kC, false);
  auto qkv = std::make_shared<Tensor>(random({n, kT, 3 * kC}, 7)),
       dqkv = std::make_shared<Tensor>(Tensor::empty({n, kT, 3 * kC}));
  auto att = std::make_shared<Tensor>(Tensor::empty({n, kHeads, kT, kT})),
       att_mask = std::make_shared<Tensor>();
  ops.push_back({"attention fwd", [=](const Context& c) {
                   k::attention_forward(c, *qkv, *y, *att, *att_mask, kHeads, 0.0f, k::DropoutKey{});
                 }});
  ops.push_back({"attention bwd", [=](const Context& c) {
                   k::attention_backward(c, *qkv, *att, *att_mask, *dy, *dqkv, kHeads, 0.0f);
                 }});
  add_linear(ops, "c_proj", n * kT, kC, kC, false);
  ops.push_back({"residual add", [=](const Context& c) { k::add(c, *x, *dy, *y); }});
  add_linear(ops, "c_fc", n * kT, kC, 4 * kC, false);
  auto h = std::make_shared<Tensor>(random({n, kT, 4 * kC}, 8)),
       dh = std::make_shared<Tensor>(random({n, kT, 4 * kC}, 9));
  auto hy = std::make_shared<Tensor>(Tensor::empty({n, kT, 4 * kC})),
       hdx = std::make_shared<Tensor>(Tensor::empty({n, kT, 4 * kC}));
  ops.push_back({"gelu fwd", [=](const Context& c) { k::gelu_forward(c, *h, *hy); }});
  ops.push_back({"gelu bwd", [=](const Context& c) { k::gelu_backward(c, *h, *dh, *hdx); }});
  add_linear(ops, "mlp c_proj", n * kT, 4 * kC, kC, false);
  return ops;
}

// The median, or with best the smallest (on a loaded machine the uncontended time).
double statistic(std::vector<double> v, bool best) {
  if (best) return *std::min_element(v.begin(), v.end());
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

double time_ms(const Op& op, const Context& ctx) {
  const auto start = std::chrono::steady_clock::now();
  op.run(ctx);
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

// ms per call of op in the default context and in the invariant one, calls alternating.
std::pair<double, double> ms_per_call(const Op& op, const Context& plain, const Context& invariant,
                                      int repeats, bool best) {
  for (int i = 0; i < 2; ++i) {
    op.run(plain);
    op.run(invariant);
  }
  std::vector<double> a, b;
  for (int i = 0; i < repeats; ++i) {
    a.push_back(time_ms(op, plain));
    b.push_back(time_ms(op, invariant));
  }
  return {statistic(a, best), statistic(b, best)};
}

// Note [Optimizer floor]
// ~~~~~~~~~~~~~~~~~~~~~~
// An optimizer step is a pass over flat buffers, so its floor is the bytes it must move divided
// by the bandwidth one core reaches: SGD with momentum reads p, g, buf and writes p, buf (5 x 4
// bytes an element), plain SGD 3 x 4, AdamW reads p, g, m, v and writes p, m, v (7 x 4). The
// bandwidth comes from an in-place triad a[i] += s * b[i] over buffers of the same size (reads
// a, b, writes a: 3 x 4 bytes, no write-allocate traffic beyond what is counted, like the
// optimizers, whose stores go to lines they have just read), timed alternately with the
// optimizers so that load from other processes falls on both alike. It is compiled for the same
// ISAs as the optimizer loops (Note [Optimizer loops] in kernels/cpu/optim.cpp).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
__attribute__((noinline)) void triad_in_place(float* a, const float* b, float s, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) a[i] += s * b[i];
}

double seconds_of(const std::function<void()>& f) {
  const auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// One memory-bound pass: its name, the bytes it must move and the call.
struct Pass {
  std::string name;
  double bytes;
  std::function<void()> run;
};

// Times the passes after the triad (passes[0]), alternating, and prints each against its floor.
void print_floor_table(const char* what, std::int64_t numel, const std::vector<Pass>& passes,
                       int repeats, bool best) {
  std::vector<std::vector<double>> seconds(passes.size());
  for (int r = 0; r < repeats + 2; ++r) {
    for (std::size_t c = 0; c < passes.size(); ++c) {
      const double t = seconds_of(passes[c].run);
      if (r >= 2) seconds[c].push_back(t);  // two warm-up rounds
    }
  }
  std::printf("\n## %s: triad over %lld floats, 1 thread, %s of %d calls\n", what,
              static_cast<long long>(numel), best ? "fastest" : "median", repeats);
  const double bandwidth = passes[0].bytes / statistic(seconds[0], best);
  std::printf("| pass | ms | GB/s | floor ms | time / floor |\n|---|---:|---:|---:|---:|\n");
  for (std::size_t c = 0; c < passes.size(); ++c) {
    const double s = statistic(seconds[c], best);
    const double floor_s = passes[c].bytes / bandwidth;
    std::printf("| %s | %.2f | %.1f | %.2f | %.2f |\n", passes[c].name.c_str(), 1e3 * s,
                passes[c].bytes / s / 1e9, 1e3 * floor_s, s / floor_s);
  }
}

int run_floor_tables(std::int64_t numel, bool optimizers, bool elementwise, int repeats,
                     bool best) {
  std::printf("# dpt-kernel-bench: memory-bound passes against their bandwidth floor\n# %s\n",
              cpu_description().c_str());
  const Context ctx = Context::create(dpt::Device::cpu(), 1);
  const double n = static_cast<double>(numel), f = sizeof(float);
  Tensor a = random({numel}, 6), b = random({numel}, 2);
  const Pass triad{"triad a += s*b", 3 * f * n,
                   [&] { triad_in_place(a.data<float>(), b.data<float>(), 0.5f, numel); }};
  if (optimizers) {
    Tensor p = random({numel}, 1), buf = random({numel}, 3);
    Tensor m = random({numel}, 4), v = random({numel}, 5), none;
    for (float* x = v.data<float>(); x != v.data<float>() + numel; ++x) *x = *x * *x;  // v >= 0
    // Small steps: the parameters stay finite over many repeats.
    const k::SgdHyper sgd_momentum{1e-6, 0.9, 0.0, 1e-4, false, 1.0 / 128};
    const k::SgdHyper sgd_plain{1e-6, 0.0, 0.0, 0.0, false, 1.0 / 128};
    const k::AdamWHyper adamw{1e-6, 0.9, 0.999, 1e-8, 0.01, 1.0 / 128};
    std::int64_t adam_step = 0;
    print_floor_table(
        "optimizers", numel,
        {triad,
         {"sgd momentum", 5 * f * n, [&] { k::sgd_step(ctx, p, b, buf, sgd_momentum, false); }},
         {"sgd plain", 3 * f * n, [&] { k::sgd_step(ctx, p, b, none, sgd_plain, false); }},
         {"adamw", 7 * f * n, [&] { k::adamw_step(ctx, p, b, m, v, adamw, ++adam_step); }}},
        repeats, best);
  }
  if (elementwise) {
    // A store to a line the pass has not read costs a read for ownership as well: such outputs
    // count twice.
    Tensor y = random({numel}, 7), dy = random({numel}, 8), dx = Tensor::empty({numel});
    Tensor mask = random({numel}, 9);
    // cnn's first pooling layer, 2x2 over 128 x 32 x 28 x 28.
    const Shape ps{128, 32, 28, 28};
    const k::Pool2dParams pool{};
    auto px = std::make_shared<Tensor>(random(ps, 10));
    auto py = std::make_shared<Tensor>(Tensor::empty(k::pool2d_output_shape(ps, pool)));
    auto pws = std::make_shared<Tensor>(), pdx = std::make_shared<Tensor>(Tensor::empty(ps));
    k::max_pool2d_forward(ctx, *px, *py, *pws, pool);
    auto pdy = std::make_shared<Tensor>(random(py->shape(), 11));
    const double in = static_cast<double>(px->numel()), out = static_cast<double>(py->numel());
    print_floor_table(
        "elementwise and pooling", numel,
        {triad,
         {"relu_backward", 4 * f * n, [&] { k::relu_backward(ctx, y, dy, dx); }},
         {"dropout_backward", 4 * f * n, [&] { k::dropout_backward(ctx, dy, mask, dx); }},
         {"axpy", 3 * f * n, [&] { k::axpy(ctx, 1e-3f, dy, y); }},
         {"scale", 2 * f * n, [&] { k::scale(ctx, y, 0.999f); }},
         {"maxpool fwd 128x32x28x28", f * in + 2 * (f * out + out),
          [&] { k::max_pool2d_forward(ctx, *px, *py, *pws, pool); }},
         {"maxpool bwd 128x32x28x28", f * out + out + 2 * f * in,
          [&] { k::max_pool2d_backward(ctx, *pdy, *pws, *pdx, pool); }}},
        repeats, best);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Per-op CPU time of the reference models, default vs thread-invariant mode",
               "dpt-kernel-bench"};
  std::int64_t batch = 32;
  std::vector<int> threads{1, 2};
  std::vector<std::string> models{"cnn", "mlp"};
  int repeats = 30;
  bool best = false;
  bool optimizers = false, elementwise = false;
  std::int64_t numel = 10'000'000;
  app.add_option("--batch", batch, "Samples per op call (the shard batch)")->capture_default_str();
  app.add_option("--threads", threads, "Thread counts")->capture_default_str();
  app.add_option("--models", models, "cnn, mlp and/or gpt (one block, T 64, C 128)")->capture_default_str();
  app.add_option("--repeats", repeats, "Timed calls per figure")->capture_default_str();
  app.add_flag("--best", best,
               "Show the fastest call instead of the median (for a loaded machine)");
  app.add_flag("--optimizers", optimizers,
               "Time the optimizer steps against the memory-bandwidth floor instead");
  app.add_flag("--elementwise", elementwise,
               "Time the elementwise and pooling passes against the bandwidth floor instead");
  app.add_option("--numel", numel, "Floats per buffer for --optimizers and --elementwise")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    if (optimizers || elementwise) {
      return run_floor_tables(numel, optimizers, elementwise, repeats, best);
    }
    std::printf("# dpt-kernel-bench: batch %lld, %s of %d calls, ms per call\n# %s\n",
                static_cast<long long>(batch), best ? "fastest" : "median", repeats,
                cpu_description().c_str());
    for (const std::string& model : models) {
      if (model != "cnn" && model != "mlp" && model != "gpt")
        throw std::invalid_argument("--models: cnn, mlp or gpt, not " + model);
      const std::vector<Op> ops = model == "cnn"   ? cnn_ops(batch)
                                  : model == "mlp" ? mlp_ops(batch)
                                                   : gpt_ops(batch);
      std::printf("\n## %s\n| op |", model.c_str());
      for (int t : threads) std::printf(" %d thr default | %d thr invariant | cost |", t, t);
      std::printf("\n|---|");
      for (std::size_t i = 0; i < threads.size(); ++i) std::printf("---:|---:|---:|");
      std::printf("\n");
      std::vector<double> totals(threads.size() * 2, 0.0);
      std::vector<std::vector<double>> rows(ops.size());
      for (std::size_t ti = 0; ti < threads.size(); ++ti) {
        const Context plain = Context::create(dpt::Device::cpu(), threads[ti]);
        Context invariant = Context::create(dpt::Device::cpu(), threads[ti]);
        invariant.set_thread_invariant(true);
        for (std::size_t i = 0; i < ops.size(); ++i) {
          const auto [d, v] = ms_per_call(ops[i], plain, invariant, repeats, best);
          rows[i].push_back(d);
          rows[i].push_back(v);
          totals[2 * ti] += d;
          totals[2 * ti + 1] += v;
        }
      }
      for (std::size_t i = 0; i < ops.size(); ++i) {
        std::printf("| %s |", ops[i].name.c_str());
        for (std::size_t ti = 0; ti < threads.size(); ++ti) {
          const double d = rows[i][2 * ti], v = rows[i][2 * ti + 1];
          std::printf(" %.3f | %.3f | %+.0f%% |", d, v, 100.0 * (v / d - 1.0));
        }
        std::printf("\n");
      }
      std::printf("| **sum** |");
      for (std::size_t ti = 0; ti < threads.size(); ++ti) {
        const double d = totals[2 * ti], v = totals[2 * ti + 1];
        std::printf(" **%.3f** | **%.3f** | **%+.0f%%** |", d, v, 100.0 * (v / d - 1.0));
      }
      std::printf("\n");
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dpt-kernel-bench: %s\n", e.what());
    return 1;
  }
}
