// SPDX-License-Identifier: MIT
// choose_token and generate.
#include "nn/train/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "runtime/check.h"
#include "runtime/philox.h"

namespace dpt::nn {

std::int32_t choose_token(const float* logits, std::int64_t vocab, double temperature,
                          std::int64_t top_k, double u) {
  DPT_CHECK(vocab > 0, "sample: empty vocabulary");
  DPT_CHECK(temperature > 0.0, "sample: temperature must be > 0, got ", temperature);
  DPT_CHECK(top_k >= 0, "sample: top-k must be >= 0, got ", top_k);
  const std::int64_t k = top_k == 0 ? vocab : std::min(top_k, vocab);
  // The k largest logits; a stable order keeps ties in token order, so the choice is unique.
  std::vector<std::int32_t> order(static_cast<std::size_t>(vocab));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::int32_t a, std::int32_t b) { return logits[a] > logits[b]; });
  order.resize(static_cast<std::size_t>(k));
  std::sort(order.begin(), order.end());  // token order for the cumulative sum
  double top = -INFINITY;
  for (std::int32_t t : order) top = std::max(top, static_cast<double>(logits[t]));
  std::vector<double> weight(order.size());
  double total = 0.0;
  for (std::size_t i = 0; i < order.size(); ++i) {
    weight[i] = std::exp((static_cast<double>(logits[order[i]]) - top) / temperature);
    total += weight[i];
  }
  const double target = u * total;
  double running = 0.0;
  for (std::size_t i = 0; i < order.size(); ++i) {
    running += weight[i];
    if (target < running) return order[i];
  }
  return order.back();  // u * total rounded up to the sum
}

std::vector<std::int32_t> generate(const Context& ctx, Sequential& model,
                                   std::vector<std::int32_t> tokens, std::int64_t context,
                                   const SampleOptions& options) {
  DPT_CHECK(!tokens.empty(), "sample: the prompt must hold at least one token");
  DPT_CHECK(context > 0, "sample: context must be positive, got ", context);
  DPT_CHECK(options.tokens >= 0, "sample: --tokens must be >= 0, got ", options.tokens);
  StepInfo info;
  info.training = false;
  const PhiloxStream draws{options.seed, RngPurpose::kSample, 0, 0};
  for (std::int64_t i = 0; i < options.tokens; ++i) {
    const std::int64_t t =
        std::min<std::int64_t>(context, static_cast<std::int64_t>(tokens.size()));
    Tensor input = Tensor::empty({1, t}, DType::kI32);
    std::copy(tokens.end() - t, tokens.end(), input.data<std::int32_t>());
    const Tensor logits = model.forward(ctx, input.to(ctx.device()), info).to(Device::cpu());
    const std::int64_t vocab = logits.dim(2);
    const float* last = logits.data<float>() + (t - 1) * vocab;
    const double u = draws.uniform(static_cast<std::uint32_t>(i));
    tokens.push_back(choose_token(last, vocab, options.temperature, options.top_k, u));
  }
  return tokens;
}

}  // namespace dpt::nn
