// SPDX-License-Identifier: MIT
// The transformer kernels (embedding, layer norm, GELU, add, causal attention): outputs and
// gradients against PyTorch 1.13 (fixtures/, written by make_transformer_fixtures.py), every
// backward against central finite differences, attention at T past one causal block against a
// naive double-precision reference, attention dropout against the dropout op's mask, the same bits
// for 1 and 2 threads, and the error messages of bad inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "finite_difference.h"
#include "kernels/ops.h"
#include "runtime/check.h"
#include "testing/fixture.h"
#include "testing/test_util.h"

namespace dpt::kernels {
namespace {

using test::expect_error;

using test::expect_gradient;

using test::all_close;
using test::random_tensor;

// Against PyTorch: both sides compute in float (PyTorch's statistics and sums in float, ours
// partly in double, sums in other orders), so results differ by float roundings: measured at most
// one ulp of the value (4.8e-7 at |v| ~ 5, relative 1e-7). 1e-5 relative plus 1e-6 absolute
// leaves a margin of 20 and still catches any wrong term (of order 1e-2 or more here).
constexpr double kTorchRtol = 1e-5, kTorchAtol = 1e-6;

// ---- fixtures ---------------------------------------------------------------------------------

using test::FixtureTensor;
using test::to_tensor;

std::map<std::string, FixtureTensor> read_fixture(const std::string& name) {
  return test::read_fixture("tests/kernels/fixtures/" + name);
}

Tensor to_tokens(const FixtureTensor& f) {
  Tensor t = Tensor::empty(f.shape, DType::kI32);
  for (std::size_t i = 0; i < f.values.size(); ++i) {
    t.data<std::int32_t>()[i] = static_cast<std::int32_t>(f.values[i]);
  }
  return t;
}

::testing::AssertionResult close_to_torch(const Tensor& actual, const FixtureTensor& expected) {
  if (actual.shape() != expected.shape) {
    return ::testing::AssertionFailure() << "shape " << to_string(actual.shape()) << " vs "
                                         << to_string(expected.shape);
  }
  return all_close(actual, to_tensor(expected), kTorchRtol, kTorchAtol);
}

// ---- helpers ----------------------------------------------------------------------------------

double dot(const Tensor& a, const Tensor& b) {
  double s = 0.0;
  for (std::int64_t i = 0; i < a.numel(); ++i) {
    s += static_cast<double>(a.data<float>()[i]) * b.data<float>()[i];
  }
  return s;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.size_bytes() == b.size_bytes() &&
         std::memcmp(a.raw_data(), b.raw_data(), a.size_bytes()) == 0;
}

Tensor random_tokens(const Shape& shape, std::int32_t vocab, std::uint64_t seed) {
  const Tensor u = random_tensor(shape, seed, 0.0f, 1.0f);
  Tensor t = Tensor::empty(shape, DType::kI32);
  for (std::int64_t i = 0; i < t.numel(); ++i) {
    t.data<std::int32_t>()[i] =
        std::min(vocab - 1, static_cast<std::int32_t>(u.data<float>()[i] * vocab));
  }
  return t;
}

// Naive double-precision causal attention from the definition, sharing no code with the kernels:
// y, att (the softmax) and, given dy, dqkv. mask (may be null) multiplies att before att v.
struct AttentionRef {
  std::vector<double> y, att, dqkv;
};
AttentionRef attention_reference(const Tensor& qkv, const float* mask, const Tensor& dy,
                                 int heads) {
  const std::int64_t B = qkv.dim(0), T = qkv.dim(1), C = qkv.dim(2) / 3, D = C / heads;
  const float* x = qkv.data<float>();
  const float* g = dy.data<float>();
  auto at = [&](std::int64_t b, std::int64_t t, std::int64_t part, std::int64_t h,
                std::int64_t d) { return ((b * T + t) * 3 + part) * C + h * D + d; };
  AttentionRef r;
  r.y.assign(static_cast<std::size_t>(B * T * C), 0.0);
  r.att.assign(static_cast<std::size_t>(B * heads * T * T), 0.0);
  r.dqkv.assign(static_cast<std::size_t>(qkv.numel()), 0.0);
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  for (std::int64_t b = 0; b < B; ++b) {
    for (std::int64_t h = 0; h < heads; ++h) {
      const std::int64_t base = (b * heads + h) * T * T;
      auto m = [&](std::int64_t i, std::int64_t j) { return mask ? mask[base + i * T + j] : 1.0; };
      std::vector<double> p(static_cast<std::size_t>(T * T), 0.0), dp(p.size(), 0.0);
      for (std::int64_t i = 0; i < T; ++i) {
        double mx = -1e300;
        std::vector<double> s(static_cast<std::size_t>(i + 1));
        for (std::int64_t j = 0; j <= i; ++j) {
          double dotv = 0.0;
          for (std::int64_t d = 0; d < D; ++d) dotv += static_cast<double>(x[at(b, i, 0, h, d)]) * x[at(b, j, 1, h, d)];
          s[j] = dotv * scale;
          mx = std::max(mx, s[j]);
        }
        double sum = 0.0;
        for (std::int64_t j = 0; j <= i; ++j) sum += std::exp(s[j] - mx);
        for (std::int64_t j = 0; j <= i; ++j) p[i * T + j] = std::exp(s[j] - mx) / sum;
      }
      for (std::int64_t i = 0; i < T * T; ++i) r.att[base + i] = p[i];
      for (std::int64_t i = 0; i < T; ++i) {
        for (std::int64_t d = 0; d < D; ++d) {
          double acc = 0.0;
          for (std::int64_t j = 0; j <= i; ++j) acc += p[i * T + j] * m(i, j) * x[at(b, j, 2, h, d)];
          r.y[(b * T + i) * C + h * D + d] = acc;
        }
      }
      // Backward: dp = (dy v^T) * mask, ds = p * (dp - sum p dp) * scale.
      for (std::int64_t i = 0; i < T; ++i) {
        double row = 0.0;
        for (std::int64_t j = 0; j <= i; ++j) {
          double acc = 0.0;
          for (std::int64_t d = 0; d < D; ++d) acc += static_cast<double>(g[(b * T + i) * C + h * D + d]) * x[at(b, j, 2, h, d)];
          dp[i * T + j] = acc * m(i, j);
          row += p[i * T + j] * dp[i * T + j];
          for (std::int64_t d = 0; d < D; ++d) r.dqkv[at(b, j, 2, h, d)] += p[i * T + j] * m(i, j) * g[(b * T + i) * C + h * D + d];
        }
        for (std::int64_t j = 0; j <= i; ++j) {
          const double ds = p[i * T + j] * (dp[i * T + j] - row) * scale;
          for (std::int64_t d = 0; d < D; ++d) {
            r.dqkv[at(b, i, 0, h, d)] += ds * x[at(b, j, 1, h, d)];
            r.dqkv[at(b, j, 1, h, d)] += ds * x[at(b, i, 0, h, d)];
          }
        }
      }
    }
  }
  return r;
}

class Transformer : public ::testing::Test {
 protected:
  Context ctx_ = Context::create(Device::cpu());
  Tensor none_;
};

// ---- against PyTorch ----------------------------------------------------------------------------

TEST_F(Transformer, EmbeddingMatchesTorch) {
  const auto f = read_fixture("embedding.txt");
  const Tensor tokens = to_tokens(f.at("tokens"));
  const Tensor wte = to_tensor(f.at("wte")), wpe = to_tensor(f.at("wpe"));
  Tensor y = Tensor::empty(f.at("y").shape);
  embedding_forward(ctx_, tokens, wte, wpe, y);
  EXPECT_TRUE(close_to_torch(y, f.at("y")));

  // dwpe's rows at or past T (P = 6, T = 5) are left alone: they keep the sentinel.
  const std::int64_t T = tokens.dim(1), C = wte.dim(1);
  Tensor dwte = Tensor::full(wte.shape(), 3.0f), dwpe = Tensor::full(wpe.shape(), 7.0f);
  embedding_backward(ctx_, tokens, to_tensor(f.at("dy")), dwte, dwpe, false, false);
  EXPECT_TRUE(close_to_torch(dwte, f.at("dwte")));
  for (std::int64_t i = 0; i < wpe.numel(); ++i) {
    const double expected = i < T * C ? f.at("dwpe").values[i] : 7.0;
    EXPECT_NEAR(dwpe.data<float>()[i], expected, kTorchAtol + kTorchRtol * std::abs(expected))
        << "dwpe element " << i;
  }
  // Accumulation adds onto what is there (a tied head's gradient written first).
  Tensor acc_wte = Tensor::full(wte.shape(), 1.0f), acc_wpe = Tensor::full(wpe.shape(), -2.0f);
  embedding_backward(ctx_, tokens, to_tensor(f.at("dy")), acc_wte, acc_wpe, true, true);
  for (std::int64_t i = 0; i < wte.numel(); ++i) {
    EXPECT_NEAR(acc_wte.data<float>()[i], dwte.data<float>()[i] + 1.0, 1e-6) << i;
  }
  for (std::int64_t i = 0; i < T * C; ++i) {
    EXPECT_NEAR(acc_wpe.data<float>()[i], dwpe.data<float>()[i] - 2.0, 1e-6) << i;
  }
}

TEST_F(Transformer, LayerNormMatchesTorch) {
  const auto f = read_fixture("layer_norm.txt");
  const Tensor x = to_tensor(f.at("x")), gamma = to_tensor(f.at("gamma")),
               beta = to_tensor(f.at("beta")), dy = to_tensor(f.at("dy"));
  const std::int64_t rows = x.numel() / x.dim(2), C = x.dim(2);
  Tensor y = Tensor::empty(x.shape()), mean = Tensor::empty({rows}), rstd = Tensor::empty({rows});
  layer_norm_forward(ctx_, x, gamma, beta, y, mean, rstd, 1e-5f);
  EXPECT_TRUE(close_to_torch(y, f.at("y")));
  EXPECT_TRUE(all_close(mean, to_tensor(f.at("mean")).reshape({rows}), kTorchRtol, kTorchAtol));
  EXPECT_TRUE(all_close(rstd, to_tensor(f.at("rstd")).reshape({rows}), kTorchRtol, kTorchAtol));
  Tensor dx = Tensor::empty(x.shape()), dgamma = Tensor::empty({C}), dbeta = Tensor::empty({C});
  layer_norm_backward(ctx_, x, gamma, mean, rstd, dy, dx, dgamma, dbeta, false);
  EXPECT_TRUE(close_to_torch(dx, f.at("dx")));
  EXPECT_TRUE(close_to_torch(dgamma, f.at("dgamma")));
  EXPECT_TRUE(close_to_torch(dbeta, f.at("dbeta")));
  // accumulate: the same sums added once more.
  layer_norm_backward(ctx_, x, gamma, mean, rstd, dy, dx, dgamma, dbeta, true);
  for (std::int64_t j = 0; j < C; ++j) {
    EXPECT_NEAR(dgamma.data<float>()[j], 2.0 * f.at("dgamma").values[j], 1e-5) << j;
    EXPECT_NEAR(dbeta.data<float>()[j], 2.0 * f.at("dbeta").values[j], 1e-5) << j;
  }

  // Without bias (bias=False).
  layer_norm_forward(ctx_, x, gamma, none_, y, mean, rstd, 1e-5f);
  EXPECT_TRUE(close_to_torch(y, f.at("y_nobias")));
  layer_norm_backward(ctx_, x, gamma, mean, rstd, dy, dx, dgamma, none_, false);
  EXPECT_TRUE(close_to_torch(dx, f.at("dx_nobias")));
  EXPECT_TRUE(close_to_torch(dgamma, f.at("dgamma_nobias")));
}

TEST_F(Transformer, GeluMatchesTorch) {
  const auto f = read_fixture("gelu.txt");
  const Tensor x = to_tensor(f.at("x")), dy = to_tensor(f.at("dy"));
  Tensor y = Tensor::empty(x.shape()), dx = Tensor::empty(x.shape());
  gelu_forward(ctx_, x, y);
  EXPECT_TRUE(close_to_torch(y, f.at("y")));
  gelu_backward(ctx_, x, dy, dx);
  EXPECT_TRUE(close_to_torch(dx, f.at("dx")));
  // In place, as the contract allows.
  Tensor inplace = x.clone();
  gelu_forward(ctx_, inplace, inplace);
  EXPECT_TRUE(same_bits(inplace, y));
}

TEST_F(Transformer, AttentionMatchesTorch) {
  const auto f = read_fixture("attention.txt");
  const Tensor qkv = to_tensor(f.at("qkv")), dy = to_tensor(f.at("dy"));
  const std::int64_t B = qkv.dim(0), T = qkv.dim(1), C = qkv.dim(2) / 3;
  const int heads = 2;
  Tensor y = Tensor::empty({B, T, C}), att = Tensor::empty({B, heads, T, T});
  Tensor mask;  // untouched without dropout
  attention_forward(ctx_, qkv, y, att, mask, heads, 0.0f, DropoutKey{});
  EXPECT_TRUE(close_to_torch(y, f.at("y")));
  EXPECT_TRUE(close_to_torch(att, f.at("att")));
  Tensor dqkv = Tensor::full(qkv.shape(), 99.0f);  // every element is overwritten
  attention_backward(ctx_, qkv, att, mask, dy, dqkv, heads, 0.0f);
  EXPECT_TRUE(close_to_torch(dqkv, f.at("dqkv")));
}

TEST_F(Transformer, AddSumsElementwise) {
  const Tensor a = random_tensor({3, 7}, 1), b = random_tensor({3, 7}, 2);
  Tensor y = Tensor::empty({3, 7});
  add(ctx_, a, b, y);
  for (std::int64_t i = 0; i < y.numel(); ++i) {
    EXPECT_EQ(y.data<float>()[i], a.data<float>()[i] + b.data<float>()[i]);
  }
  Tensor alias = a.clone();
  add(ctx_, alias, b, alias);
  EXPECT_TRUE(same_bits(alias, y));
}

// ---- finite differences -------------------------------------------------------------------------

TEST_F(Transformer, EmbeddingGradCheck) {
  const Tensor tokens = random_tokens({2, 5}, 4, 1);  // 10 positions over 4 tokens: repeats
  Tensor wte = random_tensor({4, 8}, 2), wpe = random_tensor({6, 8}, 3);
  const Tensor r = random_tensor({2, 5, 8}, 4);
  Tensor y = Tensor::empty({2, 5, 8});
  auto f = [&] {
    embedding_forward(ctx_, tokens, wte, wpe, y);
    return dot(y, r);
  };
  Tensor dwte = Tensor::empty(wte.shape()), dwpe = Tensor::zeros(wpe.shape());
  embedding_backward(ctx_, tokens, r, dwte, dwpe, false, false);
  expect_gradient("dwte", wte, dwte, f, 1e-2f, 2e-3);
  expect_gradient("dwpe", wpe, dwpe, f, 1e-2f, 2e-3);
}

TEST_F(Transformer, LayerNormGradCheck) {
  for (const bool bias : {true, false}) {
    SCOPED_TRACE(bias ? "with bias" : "without bias");
    Tensor x = random_tensor({2, 5, 8}, 1, -2.0f, 3.0f), gamma = random_tensor({8}, 2),
           beta = bias ? random_tensor({8}, 3) : Tensor();
    const Tensor r = random_tensor({2, 5, 8}, 4);
    Tensor y = Tensor::empty(x.shape()), mean = Tensor::empty({10}), rstd = Tensor::empty({10});
    auto f = [&] {
      layer_norm_forward(ctx_, x, gamma, beta, y, mean, rstd, 1e-5f);
      return dot(y, r);
    };
    f();
    Tensor dx = Tensor::empty(x.shape()), dgamma = Tensor::empty({8});
    Tensor dbeta = bias ? Tensor::empty({8}) : Tensor();
    layer_norm_backward(ctx_, x, gamma, mean, rstd, r, dx, dgamma, dbeta, false);
    expect_gradient("layer norm dx", x, dx, f, 1e-2f, 2e-3);
    expect_gradient("layer norm dgamma", gamma, dgamma, f, 1e-2f, 2e-3);
    if (bias) expect_gradient("layer norm dbeta", beta, dbeta, f, 1e-2f, 2e-3);
  }
}

TEST_F(Transformer, GeluGradCheck) {
  Tensor x = random_tensor({40}, 1, -4.0f, 4.0f);
  const Tensor r = random_tensor({40}, 2);
  Tensor y = Tensor::empty({40});
  auto f = [&] {
    gelu_forward(ctx_, x, y);
    return dot(y, r);
  };
  Tensor dx = Tensor::empty({40});
  gelu_backward(ctx_, x, r, dx);
  expect_gradient("gelu dx", x, dx, f, 1e-2f, 2e-3);
}

// Finite differences of attention, with and without dropout (the mask is a function of the key,
// so every evaluation drops the same elements and f is smooth in qkv).
void attention_gradcheck(const Context& ctx, float p) {
  const int heads = 2;
  Tensor qkv = random_tensor({2, 5, 24}, 1);
  const Tensor r = random_tensor({2, 5, 8}, 2);
  const DropoutKey key{42, 3, 1, 5};
  Tensor y = Tensor::empty({2, 5, 8}), att = Tensor::empty({2, heads, 5, 5});
  Tensor mask = Tensor::empty(att.shape());
  auto f = [&] {
    attention_forward(ctx, qkv, y, att, mask, heads, p, key);
    return dot(y, r);
  };
  f();
  Tensor dqkv = Tensor::empty(qkv.shape());
  attention_backward(ctx, qkv, att, mask, r, dqkv, heads, p);
  expect_gradient("attention dqkv", qkv, dqkv, f, 1e-2f, 2e-3);
}

TEST_F(Transformer, AttentionGradCheck) { attention_gradcheck(ctx_, 0.0f); }
TEST_F(Transformer, AttentionGradCheckWithDropout) { attention_gradcheck(ctx_, 0.3f); }

// ---- attention past one causal block, dropout ---------------------------------------------------

// T = 37 and 70 cross the kernel's blocks of 32 rows (a partial last block); against the naive
// reference, forward and backward, with and without dropout.
TEST_F(Transformer, AttentionMatchesNaiveReferenceAcrossBlocks) {
  for (const std::int64_t T : {37, 70}) {
    for (const float p : {0.0f, 0.25f}) {
      SCOPED_TRACE(::testing::Message() << "T " << T << " p " << p);
      const int heads = 3;
      const std::int64_t B = 2, C = 12;
      const Tensor qkv = random_tensor({B, T, 3 * C}, 7, -2.0f, 2.0f);
      const Tensor dy = random_tensor({B, T, C}, 8);
      Tensor y = Tensor::empty({B, T, C}), att = Tensor::empty({B, heads, T, T});
      Tensor mask = Tensor::empty(att.shape()), dqkv = Tensor::empty(qkv.shape());
      attention_forward(ctx_, qkv, y, att, mask, heads, p, DropoutKey{9, 1, 2, 0});
      attention_backward(ctx_, qkv, att, mask, dy, dqkv, heads, p);
      const AttentionRef ref =
          attention_reference(qkv, p > 0.0f ? mask.data<float>() : nullptr, dy, heads);
      EXPECT_TRUE(all_close(y, Tensor::from_vector(y.shape(), {ref.y.begin(), ref.y.end()}), 1e-4, 1e-5));
      EXPECT_TRUE(all_close(att, Tensor::from_vector(att.shape(), {ref.att.begin(), ref.att.end()}), 1e-4, 1e-6));
      EXPECT_TRUE(all_close(dqkv, Tensor::from_vector(dqkv.shape(), {ref.dqkv.begin(), ref.dqkv.end()}), 1e-4, 1e-5));
    }
  }
}

// The mask of element (h, i, j) of sample b is the dropout mask of element h*T*T + i*T + j of
// global sample first_sample + b: what dropout_forward gives a [B, heads*T*T] tensor with the same
// key. T = 5 (25 elements per head) puts blocks of 4 across heads.
TEST_F(Transformer, AttentionDropoutMaskIsTheDocumentedElementsMask) {
  const int heads = 2;
  const std::int64_t B = 3, T = 5, C = 8;
  const float p = 0.4f;
  const DropoutKey key{0x1234567890ULL, 17, 4, 100};
  const Tensor qkv = random_tensor({B, T, 3 * C}, 1);
  Tensor y = Tensor::empty({B, T, C}), att = Tensor::empty({B, heads, T, T});
  Tensor mask = Tensor::empty(att.shape());
  attention_forward(ctx_, qkv, y, att, mask, heads, p, key);

  const Tensor ones = Tensor::full({B, heads * T * T}, 1.0f);
  Tensor dropped = Tensor::empty(ones.shape()), expected = Tensor::empty(ones.shape());
  dropout_forward(ctx_, ones, dropped, expected, p, key);
  EXPECT_TRUE(same_bits(mask, expected.reshape(mask.shape())));
  std::int64_t zeros = 0;
  for (std::int64_t i = 0; i < mask.numel(); ++i) zeros += mask.data<float>()[i] == 0.0f;
  EXPECT_GT(zeros, 0);
  EXPECT_LT(zeros, mask.numel());

  // A pure function of the global sample: sample 101 alone gets batch row 1's mask.
  const Tensor one_sample = Tensor::rows_of(qkv, 1, 1).clone();
  Tensor y1 = Tensor::empty({1, T, C}), att1 = Tensor::empty({1, heads, T, T});
  Tensor mask1 = Tensor::empty(att1.shape());
  attention_forward(ctx_, one_sample, y1, att1, mask1, heads, p,
                    DropoutKey{key.seed, key.step, key.layer, 101});
  EXPECT_TRUE(same_bits(mask1, Tensor::rows_of(mask, 1, 1).clone()));
  EXPECT_TRUE(same_bits(y1, Tensor::rows_of(y, 1, 1).clone()));
}

// ---- thread-count independence ------------------------------------------------------------------

// Shapes big enough for the parallel paths (>= 2^15 elements), outputs compared bit for bit
// between 1 and 2 threads.
TEST_F(Transformer, SameBitsForOneAndTwoThreads) {
  const std::int64_t B = 4, T = 70, C = 128, V = 50;
  const int heads = 4;
  const Tensor tokens = random_tokens({B, T}, static_cast<std::int32_t>(V), 1);
  const Tensor dy = random_tensor({B, T, C}, 2), x = random_tensor({B, T, C}, 3, -1.0f, 2.0f);
  const Tensor gamma = random_tensor({C}, 4), beta = random_tensor({C}, 5);
  const Tensor qkv = random_tensor({B, T, 3 * C}, 6);
  std::vector<std::vector<Tensor>> runs;
  for (const int threads : {1, 2}) {
    const Context ctx = Context::create(Device::cpu(), threads);
    Tensor dwte = Tensor::full({V, C}, 0.5f), dwpe = Tensor::full({T + 3, C}, 0.25f);
    embedding_backward(ctx, tokens, dy, dwte, dwpe, true, true);
    Tensor y = Tensor::empty(x.shape()), mean = Tensor::empty({B * T}),
           rstd = Tensor::empty({B * T});
    layer_norm_forward(ctx, x, gamma, beta, y, mean, rstd, 1e-5f);
    Tensor dx = Tensor::empty(x.shape()), dgamma = Tensor::full({C}, 1.0f),
           dbeta = Tensor::full({C}, 1.0f);
    layer_norm_backward(ctx, x, gamma, mean, rstd, dy, dx, dgamma, dbeta, true);
    Tensor ay = Tensor::empty({B, T, C}), att = Tensor::empty({B, heads, T, T});
    Tensor mask = Tensor::empty(att.shape()), dqkv = Tensor::empty(qkv.shape());
    attention_forward(ctx, qkv, ay, att, mask, heads, 0.1f, DropoutKey{5, 6, 7, 8});
    attention_backward(ctx, qkv, att, mask, dy, dqkv, heads, 0.1f);
    runs.push_back({dwte, dwpe, y, mean, rstd, dx, dgamma, dbeta, ay, att, mask, dqkv});
  }
  const char* names[] = {"dwte", "dwpe", "ln y", "mean", "rstd", "ln dx", "dgamma", "dbeta",
                         "attention y", "att", "att_mask", "dqkv"};
  for (std::size_t i = 0; i < runs[0].size(); ++i) {
    EXPECT_TRUE(same_bits(runs[0][i], runs[1][i])) << names[i] << " differs between 1 and 2 threads";
  }
}

// ---- errors -------------------------------------------------------------------------------------

TEST_F(Transformer, BadInputsAreErrorsNamingTheProblem) {
  Tensor tokens = Tensor::zeros({2, 3}, DType::kI32);
  tokens.data<std::int32_t>()[5] = 9;  // b = 1, t = 2
  const Tensor wte = random_tensor({9, 4}, 1), wpe = random_tensor({3, 4}, 2);
  Tensor y = Tensor::empty({2, 3, 4});
  expect_error([&] { embedding_forward(ctx_, tokens, wte, wpe, y); },
               {"embedding_forward", "tokens[b=1, t=2] = 9", "[0, 9)"});
  tokens.data<std::int32_t>()[5] = -1;
  Tensor dwte = Tensor::empty(wte.shape()), dwpe = Tensor::empty(wpe.shape());
  expect_error([&] { embedding_backward(ctx_, tokens, y, dwte, dwpe, false, false); },
               {"embedding_backward", "tokens[b=1, t=2] = -1"});
  tokens.data<std::int32_t>()[5] = 0;
  const Tensor short_wpe = random_tensor({2, 4}, 3);
  expect_error([&] { embedding_forward(ctx_, tokens, wte, short_wpe, y); },
               {"embedding_forward", "T = 3", "wpe"});

  Tensor att = Tensor::empty({1, 3, 2, 2}), mask;
  const Tensor qkv = random_tensor({1, 2, 24}, 4);
  Tensor ay = Tensor::empty({1, 2, 8});
  expect_error([&] { attention_forward(ctx_, qkv, ay, att, mask, 3, 0.0f, DropoutKey{}); },
               {"attention_forward", "3 heads do not divide C = 8"});
  const Tensor bad_qkv = random_tensor({1, 2, 25}, 5);
  expect_error([&] { attention_forward(ctx_, bad_qkv, ay, att, mask, 1, 0.0f, DropoutKey{}); },
               {"attention_forward", "qkv [1, 2, 25]", "multiple of 3"});
  Tensor dqkv = Tensor::empty(qkv.shape());
  expect_error([&] { attention_backward(ctx_, qkv, att, mask, ay, dqkv, 3, 0.0f); },
               {"attention_backward", "3 heads do not divide C = 8"});

  const Tensor x = random_tensor({2, 4}, 6), gamma = random_tensor({5}, 7);
  Tensor ln_y = Tensor::empty({2, 4}), mean = Tensor::empty({2}), rstd = Tensor::empty({2});
  expect_error([&] { layer_norm_forward(ctx_, x, gamma, none_, ln_y, mean, rstd, 1e-5f); },
               {"layer_norm_forward", "gamma"});
}

}  // namespace
}  // namespace dpt::kernels
