// SPDX-License-Identifier: MIT
// The gpt model: nanoGPT's names and sizes, GPT-2's initialisation, its gradient against central
// differences (the tied embedding included), micro-batch accumulation, and bad configurations.
#include "nn/gpt.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "gradient_check.h"
#include "kernels/ops.h"
#include "nn/layers/rows.h"
#include "testing/test_util.h"

namespace dpt::nn {
namespace {

Context cpu() { return Context::create(Device::cpu(), 1); }

GptConfig tiny(bool bias = true) {
  GptConfig c;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 8;
  c.block_size = 6;
  c.vocab_size = 7;
  c.bias = bias;
  return c;
}

Tensor tokens(std::int64_t batch, std::int64_t positions, std::int64_t vocab, int salt) {
  Tensor t = Tensor::empty({batch, positions}, DType::kI32);
  for (std::int64_t i = 0; i < t.numel(); ++i) {
    t.data<std::int32_t>()[i] = static_cast<std::int32_t>((i * 5 + salt * 3 + i / 3) % vocab);
  }
  return t;
}

TEST(Gpt, NamesAndSizesAreNanoGpts) {
  const GptConfig c;  // the CPU configuration: 4 x 128, 4 heads, context 64, no bias
  GptConfig sized = c;
  sized.vocab_size = 65;
  Sequential m = build_gpt(sized, 64);
  std::vector<std::string> names;
  for (const Parameter* p : m.parameters()) names.push_back(p->name);
  ASSERT_EQ(names.size(), 2u + 4u * 6u + 1u);
  EXPECT_EQ(names[0], "transformer.wte.weight");
  EXPECT_EQ(names[1], "transformer.wpe.weight");
  EXPECT_EQ(names[2], "transformer.h.0.ln_1.weight");
  EXPECT_EQ(names[3], "transformer.h.0.attn.c_attn.weight");
  EXPECT_EQ(names[4], "transformer.h.0.attn.c_proj.weight");
  EXPECT_EQ(names[5], "transformer.h.0.ln_2.weight");
  EXPECT_EQ(names[6], "transformer.h.0.mlp.c_fc.weight");
  EXPECT_EQ(names[7], "transformer.h.0.mlp.c_proj.weight");
  EXPECT_EQ(names.back(), "transformer.ln_f.weight");
  EXPECT_EQ(m.parameters()[3]->value.shape(), (Shape{384, 128}));
  // nanoGPT: 0.80M without wpe; 65 x 128 + 64 x 128 + 4 x (2 x 128 + 12 x 128^2) + 128 in all.
  EXPECT_EQ(m.num_parameters(), 65 * 128 + 64 * 128 + 4 * (2 * 128 + 12 * 128 * 128) + 128);
  EXPECT_EQ(m.output_shape(3), (Shape{3, 64, 65}));

  Sequential with_bias = build_gpt(tiny(true), 6);
  EXPECT_EQ(with_bias.parameters()[3]->name, "transformer.h.0.ln_1.bias");
}

TEST(Gpt, InitialisationIsGpt2s) {
  GptConfig c;
  c.vocab_size = 65;
  c.bias = true;
  Sequential m = build_gpt(c, 64);
  m.init_parameters(3);
  const double projection = 0.02 / std::sqrt(2.0 * 4);
  for (const Parameter* p : m.parameters()) {
    const std::vector<float> v = p->value.to_vector();
    double sum = 0.0, sum_sq = 0.0;
    for (float x : v) {
      sum += x;
      sum_sq += static_cast<double>(x) * x;
    }
    const double n = static_cast<double>(v.size());
    const std::string& name = p->name;
    if (name.find("ln_") != std::string::npos && name.ends_with(".weight")) {
      EXPECT_EQ(sum, n) << name;  // all ones
    } else if (name.ends_with(".bias")) {
      EXPECT_EQ(sum_sq, 0.0) << name;
    } else {
      const double want = name.ends_with("c_proj.weight") ? projection : 0.02;
      EXPECT_NEAR(std::sqrt(sum_sq / n), want, 0.05 * want) << name;
      EXPECT_NEAR(sum / n, 0.0, 5 * want / std::sqrt(n)) << name;
    }
  }
}

// Loss of the whole batch: the sum over every position's cross-entropy.
double loss_of(const Context& ctx, Sequential& m, const Tensor& x, const Tensor& y,
               Tensor* dlogits) {
  const Tensor logits = as_rows(m.forward(ctx, x, StepInfo{}));
  if (dlogits != nullptr) *dlogits = Tensor::empty(logits.shape());
  return kernels::softmax_cross_entropy(ctx, logits, y, dlogits).loss_sum;
}

TEST(Gpt, GradientMatchesFiniteDifferences) {
  const Context ctx = cpu();
  const GptConfig c = tiny();
  Sequential m = build_gpt(c, c.block_size);
  m.init_parameters(5);
  // Larger than GPT-2's 0.02 so that every parameter moves the loss measurably.
  for (Parameter* p : m.parameters()) {
    const Tensor noise = test::random_tensor(p->value.shape(), 11 + p->value.numel(), -0.4f, 0.4f);
    p->value.copy_from(noise);
  }
  const Tensor x = tokens(2, c.block_size, c.vocab_size, 1);
  const Tensor y = tokens(2, c.block_size, c.vocab_size, 2).reshape({2 * c.block_size});
  Tensor dlogits;
  loss_of(ctx, m, x, y, &dlogits);
  m.backward(ctx, dlogits.reshape(m.output_shape(2)), StepInfo{});
  // Every function here is smooth (no ReLU kinks), so a larger step keeps the float forward's
  // rounding (~1e-7 of a loss of ~25) far below the tolerance.
  test::GradientTolerance tol;
  tol.h = 1e-2f;
  tol.least_largest = 1e-3;
  test::expect_gradients_match_differences(
      m, m.flat_grads().to_vector(), [&] { return loss_of(ctx, m, x, y, nullptr); }, tol);
}

TEST(Gpt, AccumulatedMicroBatchesSumToTheWholeBatch) {
  // The tied embedding's gradient is written by the head and added to by the embedding: with
  // accumulation both must add.
  const Context ctx = cpu();
  const GptConfig c = tiny(false);
  Sequential m = build_gpt(c, c.block_size);
  m.init_parameters(8);
  const Tensor x = tokens(4, c.block_size, c.vocab_size, 3);
  const Tensor y = tokens(4, c.block_size, c.vocab_size, 4).reshape({4 * c.block_size});
  Tensor d;
  loss_of(ctx, m, x, y, &d);
  m.backward(ctx, d.reshape(m.output_shape(4)), StepInfo{});
  const Tensor whole = m.flat_grads().clone();

  for (int half = 0; half < 2; ++half) {
    StepInfo info;
    info.accumulate_grads = half == 1;
    const Tensor xs = Tensor::rows_of(x, 2 * half, 2);
    const Tensor ys = Tensor::rows_of(y, 2 * half * c.block_size, 2 * c.block_size);
    const Tensor logits = as_rows(m.forward(ctx, xs, info));
    Tensor dl = Tensor::empty(logits.shape());
    kernels::softmax_cross_entropy(ctx, logits, ys, &dl);
    m.backward(ctx, dl.reshape(m.output_shape(2)), info);
  }
  EXPECT_TRUE(test::all_close(m.flat_grads(), whole, 1e-5, 1e-6));
}

TEST(Gpt, ShorterContextsRunAndLaterTokensDoNotChangeEarlierLogits) {
  const Context ctx = cpu();
  const GptConfig c = tiny();
  Sequential m = build_gpt(c, c.block_size);
  m.init_parameters(2);
  const Tensor x = tokens(1, c.block_size, c.vocab_size, 5);
  const std::vector<float> full = m.forward(ctx, x, StepInfo{}).to_vector();
  Tensor prefix = Tensor::empty({1, 3}, DType::kI32);
  std::copy_n(x.data<std::int32_t>(), 3, prefix.data<std::int32_t>());
  const std::vector<float> part = m.forward(ctx, prefix, StepInfo{}).to_vector();
  ASSERT_EQ(part.size(), static_cast<std::size_t>(3 * c.vocab_size));
  for (std::size_t i = 0; i < part.size(); ++i) EXPECT_NEAR(part[i], full[i], 1e-5) << i;
}

TEST(Gpt, BadConfigurationsNameTheKey) {
  GptConfig c = tiny();
  c.n_head = 3;  // does not divide 8
  try {
    build_gpt(c, 6);
    FAIL() << "3 heads over width 8 were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("n_head 3 does not divide n_embd 8"), std::string::npos)
        << e.what();
  }
  c = tiny();
  try {
    build_gpt(c, 7);  // context beyond block_size 6
    FAIL() << "a context longer than block_size was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("block_size 6"), std::string::npos) << e.what();
  }
  c = tiny();
  c.vocab_size = 0;
  EXPECT_THROW(build_gpt(c, 6), Error);
}

}  // namespace
}  // namespace dpt::nn
