// SPDX-License-Identifier: MIT
// Text generation: the choice of a token for a draw (temperature, top-k, ties), and generate()'s
// determinism for a seed.
#include "nn/train/sampling.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "nn/gpt.h"

namespace dpt::nn {
namespace {

TEST(Sampling, DrawsFollowTheSoftmaxInTokenOrder) {
  // Weights 1 : 2 : 3 (logits log 1, log 2, log 3): a grid of draws splits 1/6, 2/6, 3/6.
  const std::vector<float> logits = {0.0f, std::log(2.0f), std::log(3.0f)};
  std::vector<int> count(3, 0);
  const int n = 6000;
  for (int i = 0; i < n; ++i) {
    ++count[static_cast<std::size_t>(choose_token(logits.data(), 3, 1.0, 0, (i + 0.5) / n))];
  }
  EXPECT_NEAR(count[0], 1000, 2);
  EXPECT_NEAR(count[1], 2000, 2);
  EXPECT_NEAR(count[2], 3000, 2);
  EXPECT_EQ(choose_token(logits.data(), 3, 1.0, 0, 0.0), 0);
  EXPECT_EQ(choose_token(logits.data(), 3, 1.0, 0, 0.9999), 2);
}

TEST(Sampling, TemperatureAndTopK) {
  const std::vector<float> logits = {1.0f, 3.0f, 2.0f, 3.0f};
  // top-k 1 is the argmax, the first of tied maxima, whatever the draw.
  for (double u : {0.0, 0.5, 0.99}) EXPECT_EQ(choose_token(logits.data(), 4, 1.0, 1, u), 1);
  // top-k 2 keeps tokens 1 and 3 (equal weights): halves.
  EXPECT_EQ(choose_token(logits.data(), 4, 1.0, 2, 0.49), 1);
  EXPECT_EQ(choose_token(logits.data(), 4, 1.0, 2, 0.51), 3);
  // A tiny temperature is nearly the argmax set; a huge one nearly uniform.
  EXPECT_EQ(choose_token(logits.data(), 4, 1e-3, 0, 0.3), 1);
  EXPECT_EQ(choose_token(logits.data(), 4, 1e6, 0, 0.3), 1);  // uniform: quarter 2 of 4
  EXPECT_EQ(choose_token(logits.data(), 4, 1e6, 0, 0.1), 0);
  EXPECT_THROW(choose_token(logits.data(), 4, 0.0, 0, 0.5), Error);
  EXPECT_THROW(choose_token(logits.data(), 4, 1.0, -1, 0.5), Error);
}

TEST(Sampling, GenerateIsDeterministicForASeedAndKeepsTheContext) {
  const Context ctx = Context::create(Device::cpu(), 1);
  GptConfig c;
  c.n_layer = 1;
  c.n_head = 2;
  c.n_embd = 8;
  c.block_size = 4;
  c.vocab_size = 5;
  Sequential m = build_gpt(c, c.block_size);
  m.init_parameters(1);
  // GPT-2's small initial weights give nearly uniform draws: two seeds give different text.
  SampleOptions o;
  o.tokens = 12;
  o.seed = 3;
  const std::vector<std::int32_t> prompt = {1, 2, 3, 4, 0, 1};  // longer than the context
  const auto a = generate(ctx, m, prompt, c.block_size, o);
  const auto b = generate(ctx, m, prompt, c.block_size, o);
  EXPECT_EQ(a, b);
  ASSERT_EQ(a.size(), prompt.size() + 12);
  EXPECT_TRUE(std::equal(prompt.begin(), prompt.end(), a.begin()));
  for (std::int32_t t : a) EXPECT_TRUE(t >= 0 && t < 5);
  o.seed = 4;
  EXPECT_NE(generate(ctx, m, prompt, c.block_size, o), a);
  EXPECT_THROW(generate(ctx, m, {}, c.block_size, o), Error);
}

}  // namespace
}  // namespace dpt::nn
