// SPDX-License-Identifier: MIT
// Mixed precision (--precision bf16|fp16): a Linear or Conv2d computes, forward and backward, the
// f32 math of its inputs rounded to the format (bit for bit: Note [Mixed precision in layers]),
// and stays within the error the format's rounding allows of the f32 result and of PyTorch 1.13's
// CPU autocast in bf16 (fixtures/autocast_bf16.txt); the fp16 loss scale
// grows and backs off as GradScaler's; through the trainer an overflow skips the step on every
// rank alike with the parameters unchanged, the scale halves, grows after the interval, and a
// resume continues its exact state.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "kernels/ops.h"
#include "nn/layers/conv2d.h"
#include "nn/layers/linear.h"
#include "nn/models.h"
#include "nn/train/loss_scaler.h"
#include "nn/train/trainer.h"
#include "runtime/io/loader_testing.h"
#include "testing/fixture.h"
#include "testing/test_util.h"

namespace dpt::nn {
namespace {

namespace fs = std::filesystem;

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.raw_data(), b.raw_data(), a.size_bytes()) == 0;
}

double max_abs(const Tensor& t) {
  double m = 0.0;
  for (const float v : t.to_vector()) m = std::max(m, std::fabs(double{v}));
  return m;
}

Tensor rounded(const Context& ctx, const Tensor& t, DType format) {
  Tensor r = Tensor::empty(t.shape());
  kernels::round_to_format(ctx, t, r, format);
  return r;
}

struct LayerCase {
  const char* name;
  std::function<std::unique_ptr<WeightLayer>()> make;
  Shape input;
  bool relu;
};

std::vector<LayerCase> layer_cases() {
  return {
      {"linear", [] { return std::make_unique<Linear>(37, 19); }, {6, 37}, false},
      {"linear_relu", [] { return std::make_unique<Linear>(37, 19); }, {6, 37}, true},
      {"linear_no_bias", [] { return std::make_unique<Linear>(37, 19, false); }, {6, 37}, false},
      {"conv", [] { return std::make_unique<Conv2d>(3, 5, 3, 1, 1); }, {4, 3, 9, 7}, false},
      {"conv_relu", [] { return std::make_unique<Conv2d>(3, 5, 3, 2, 0); }, {4, 3, 9, 11}, true},
  };
}

// The layer's parameters set from `seed` (rounded to `format` unless it is f32), gradients zero.
void set_parameters(WeightLayer& layer, std::uint64_t seed, const Context& ctx, DType format) {
  for (Parameter* p : layer.parameters()) {
    Tensor v = test::random_tensor(p->value.shape(), seed++);
    p->value = format == DType::kF32 ? v : rounded(ctx, v, format);
    p->grad = Tensor::zeros(p->value.shape());
  }
}

class MixedPrecisionLayer : public ::testing::TestWithParam<DType> {
 protected:
  void SetUp() override { invariant_.set_thread_invariant(true); }
  Context ctx_ = Context::create(Device::cpu(), 1);
  // Thread-invariant mode (exact mode's) always widens half operands: the f32 math exactly.
  Context invariant_ = Context::create(Device::cpu(), 1);
};

// The layer against the same layer in f32 with rounded weight, input and output gradient: bit for
// bit where the kernels widen the operands (`tolerance` 0), within f32 summation-order error of the
// largest value where they multiply bf16 natively (Note [Native bf16 GEMMs]).
void expect_rounded_f32_math(const Context& ctx, DType format, double tolerance) {
  for (const LayerCase& c : layer_cases()) {
    SCOPED_TRACE(c.name);
    std::unique_ptr<WeightLayer> mixed = c.make(), reference = c.make();
    if (c.relu) {
      mixed->fuse_relu();
      reference->fuse_relu();
    }
    set_parameters(*mixed, 11, ctx, DType::kF32);
    // The weight rounded: the bias is f32 in both (it is added in f32).
    set_parameters(*reference, 11, ctx, DType::kF32);
    reference->parameters()[0]->value = rounded(ctx, mixed->parameters()[0]->value, format);

    const auto expect_equal = [&](const Tensor& got, const Tensor& want, const std::string& what) {
      if (tolerance == 0.0) {
        EXPECT_TRUE(same_bits(got, want)) << what;
      } else {
        EXPECT_TRUE(test::all_close(got, want, 0.0, tolerance * max_abs(want))) << what;
      }
    };
    StepInfo in_format, in_f32;
    in_format.compute = format;
    const Tensor x = test::random_tensor(c.input, 21);
    const Tensor y = mixed->forward(ctx, x, in_format);
    const Tensor y_ref = reference->forward(ctx, rounded(ctx, x, format), in_f32);
    expect_equal(y, y_ref, "forward");

    const Tensor dy = test::random_tensor(y.shape(), 22);
    const Tensor dx = mixed->backward(ctx, dy, in_format, /*need_dx=*/true);
    const Tensor dx_ref = reference->backward(ctx, rounded(ctx, dy, format), in_f32, true);
    EXPECT_EQ(dx.dtype(), DType::kF32);
    expect_equal(dx, dx_ref, "input gradient");
    for (std::size_t i = 0; i < mixed->parameters().size(); ++i) {
      EXPECT_EQ(mixed->parameters()[i]->grad.dtype(), DType::kF32);
      expect_equal(mixed->parameters()[i]->grad, reference->parameters()[i]->grad,
                   mixed->parameters()[i]->name + " gradient");
    }
    // The master weight is untouched by the forward's cast.
    Tensor master = test::random_tensor(mixed->parameters()[0]->value.shape(), 11);
    EXPECT_TRUE(same_bits(mixed->parameters()[0]->value, master));
  }
}

TEST_P(MixedPrecisionLayer, ComputesTheF32MathOfRoundedInputsBitForBit) {
  expect_rounded_f32_math(invariant_, GetParam(), 0.0);
}

TEST_P(MixedPrecisionLayer, NativeBf16ProductsDifferOnlyInSummationOrder) {
  // On a CPU with AVX512_BF16/AMX Linear's bf16 products run natively; elsewhere (and for fp16,
  // and convolutions) this is the widening path again, and exact.
  expect_rounded_f32_math(ctx_, GetParam(), 1e-5);
}

// |y - y_f32| for y = x w^T + b with x and w each rounded (relative error at most u, the unit
// roundoff: 2^-8 bf16, 2^-11 fp16) is at most (2u + u^2) sum |x||w|, plus f32 accumulation
// error, bounded here by 1e-6 of the same sum; computed per output in double.
TEST_P(MixedPrecisionLayer, LinearStaysWithinTheFormatsRoundingOfF32) {
  const DType format = GetParam();
  const double u = format == DType::kBF16 ? 0x1p-8 : 0x1p-11;
  Linear mixed(300, 40), exact(300, 40);
  set_parameters(mixed, 3, ctx_, DType::kF32);
  set_parameters(exact, 3, ctx_, DType::kF32);
  const Tensor x = test::random_tensor({8, 300}, 4);
  StepInfo in_format, in_f32;
  in_format.compute = format;
  in_format.training = in_f32.training = false;
  const Tensor y = mixed.forward(ctx_, x, in_format), y32 = exact.forward(ctx_, x, in_f32);
  const float* w = exact.parameters()[0]->value.data<float>();
  double worst = 0.0, largest = 0.0;
  for (int n = 0; n < 8; ++n) {
    for (int m = 0; m < 40; ++m) {
      double magnitude = 0.0;
      for (int k = 0; k < 300; ++k) {
        magnitude += std::fabs(double{x.data<float>()[n * 300 + k]} * w[m * 300 + k]);
      }
      const double error =
          std::fabs(double{y.data<float>()[n * 40 + m]} - y32.data<float>()[n * 40 + m]);
      ASSERT_LE(error, (2 * u + u * u + 1e-6) * magnitude) << "output " << n << "," << m;
      worst = std::max(worst, error / magnitude);
      largest = std::max(largest, std::fabs(double{y.data<float>()[n * 40 + m]}));
    }
  }
  EXPECT_GT(worst, 0.0) << "the format made no difference: the inputs were not rounded";
}

INSTANTIATE_TEST_SUITE_P(Formats, MixedPrecisionLayer, ::testing::Values(DType::kBF16, DType::kF16),
                         [](const auto& param_info) {
                           return std::string(to_string(param_info.param));
                         });

// ---- against PyTorch 1.13's CPU autocast (bf16)
// ----------------------------------------------------- fixtures/autocast_bf16.txt
// (make_autocast_fixtures.py): Linear and Conv2d, with and without ReLU, forward and backward under
// torch.autocast("cpu", dtype=torch.bfloat16). Both sides multiply the same bf16 inputs and sum in
// f32; PyTorch then rounds each result to bf16 (and rounded the bias before adding it), dptrain
// keeps results and bias in f32. So an element may differ by one rounding of itself and one of the
// bias, each at most 2^-8 relative (bf16's unit roundoff), plus the order of the f32 sums (1e-5 of
// the largest value). A layer that skipped the input rounding, dropped the ReLU mask from the
// gradient or transposed a weight is off by far more than that in some element.
class MixedPrecisionAutocast : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override { ctx_.set_thread_invariant(GetParam()); }
  Context ctx_ = Context::create(Device::cpu(), 2);
  const std::map<std::string, test::FixtureTensor> fixture_ =
      test::read_fixture("tests/nn/fixtures/autocast_bf16.txt");
};

::testing::AssertionResult close_to_autocast(const Tensor& got, const test::FixtureTensor& want,
                                             double bias_magnitude) {
  if (got.shape() != want.shape) {
    return ::testing::AssertionFailure() << "shape " << dpt::to_string(got.shape())
                                         << ", PyTorch's " << dpt::to_string(want.shape);
  }
  const Tensor expected = test::to_tensor(want);
  constexpr double u = 0x1p-8;
  return test::all_close(got, expected, u, u * bias_magnitude + 1e-5 * max_abs(expected));
}

TEST_P(MixedPrecisionAutocast, LayersAgreeWithPyTorchWithinOneBf16RoundingOfEachResult) {
  const std::vector<std::pair<std::string, std::function<std::unique_ptr<WeightLayer>()>>> cases = {
      {"linear", [] { return std::make_unique<Linear>(37, 19); }},
      {"linear_relu", [] { return std::make_unique<Linear>(37, 19); }},
      {"conv", [] { return std::make_unique<Conv2d>(3, 5, 3, 1, 1); }},
      {"conv_relu", [] { return std::make_unique<Conv2d>(3, 5, 3, 2, 0); }},
  };
  for (const auto& [name, make] : cases) {
    SCOPED_TRACE(name);
    const auto at = [&](const char* key) -> const test::FixtureTensor& {
      return fixture_.at(name + "." + key);
    };
    std::unique_ptr<WeightLayer> layer = make();
    if (name.ends_with("_relu")) layer->fuse_relu();
    Parameter& weight = *layer->parameters()[0];
    Parameter& bias = *layer->parameters()[1];
    weight.value = test::to_tensor(at("w"));
    bias.value = test::to_tensor(at("b"));
    weight.grad = Tensor::zeros(weight.value.shape());
    bias.grad = Tensor::zeros(bias.value.shape());
    const double bias_magnitude = max_abs(bias.value);

    StepInfo bf16;
    bf16.compute = DType::kBF16;
    const Tensor y = layer->forward(ctx_, test::to_tensor(at("x")), bf16);
    EXPECT_TRUE(close_to_autocast(y, at("y"), bias_magnitude)) << "forward";
    const Tensor dx = layer->backward(ctx_, test::to_tensor(at("dy")), bf16, /*need_dx=*/true);
    EXPECT_TRUE(close_to_autocast(dx, at("dx"), 0.0)) << "input gradient";
    EXPECT_TRUE(close_to_autocast(weight.grad, at("dw"), 0.0)) << "weight gradient";
    EXPECT_TRUE(close_to_autocast(bias.grad, at("db"), 0.0)) << "bias gradient";
  }
}

// Native bf16 products where the CPU has them (Note [Native bf16 GEMMs]), and the widening
// emulation of thread-invariant mode.
INSTANTIATE_TEST_SUITE_P(Kernels, MixedPrecisionAutocast, ::testing::Values(false, true),
                         [](const auto& param_info) {
                           return std::string(param_info.param ? "emulated" : "native");
                         });

// The activation memory: a Linear keeps its input (and its weight's cast) in the compute format,
// its output (for the fused ReLU) in f32; each allocation counted once, parameters not at all.
TEST(MixedPrecisionMemory, LayersKeepTheirInputsInTheComputeFormat) {
  const Context ctx = Context::create(Device::cpu(), 1);
  const std::vector<LayerSpec> layers = {
      {"flatten"}, {"linear", 784, 32}, {"relu"}, {"linear", 32, 10}};
  constexpr std::int64_t n = 16;
  std::int64_t peak[3] = {};
  const DType formats[3] = {DType::kF32, DType::kBF16, DType::kF16};
  for (int f = 0; f < 3; ++f) {
    Sequential model = build_model(layers, {1, 28, 28});
    model.init_parameters(1);
    StepInfo info;
    info.compute = formats[f];
    const Tensor x = test::random_tensor({n, 1, 28, 28}, 2);
    (void)model.forward(ctx, x, info);
    EXPECT_EQ(model.saved_activation_bytes(), model.peak_activation_bytes());
    peak[f] = model.peak_activation_bytes();
    model.backward(ctx, test::random_tensor({n, 10}, 3), info);
    EXPECT_EQ(model.saved_activation_bytes(), 0) << "backward lets everything go";
    EXPECT_EQ(model.peak_activation_bytes(), peak[f]);
  }
  // f32: the batch (the first layer's input is a view of it), the ReLU-fused output of layer 1
  // (also layer 2's input: one allocation) and layer 2's output.
  EXPECT_EQ(peak[0], n * 784 * 4 + n * 32 * 4 + n * 10 * 4);
  // half: both inputs and both weights cast (2 bytes each), the outputs in f32.
  const std::int64_t half =
      n * 784 * 2 + 32 * 784 * 2 + n * 32 * 4 + n * 32 * 2 + 10 * 32 * 2 + n * 10 * 4;
  EXPECT_EQ(peak[1], half);
  EXPECT_EQ(peak[2], half);
}

// ---- the loss scale
// ------------------------------------------------------------------------------

TEST(LossScaler, BacksOffOnOverflowAndGrowsAfterTheIntervalAsGradScaler) {
  LossScaler s(65536.0, 3);
  EXPECT_EQ(s.scale(), 65536.0);
  s.update(true);
  EXPECT_EQ(s.scale(), 32768.0);
  s.update(false);
  s.update(false);
  EXPECT_EQ(s.growth_tracker(), 2);
  s.update(true);  // an overflow restarts the count
  EXPECT_EQ(s.scale(), 16384.0);
  EXPECT_EQ(s.growth_tracker(), 0);
  for (int i = 0; i < 3; ++i) s.update(false);
  EXPECT_EQ(s.scale(), 32768.0);
  EXPECT_EQ(s.growth_tracker(), 0);
  EXPECT_EQ(s.overflows(), 2);
  s.restore(0x1p-3, 2);
  EXPECT_EQ(s.scale(), 0.125);
  s.update(false);
  EXPECT_EQ(s.scale(), 0.25);
  test::expect_error([&] { s.restore(3.0, 0); }, {"loss scale must be a power of two, got 3"});
  test::expect_error([&] { s.restore(4.0, 3); }, {"expected a count in [0, 3)", "got 3"});
  test::expect_error([] { LossScaler(100.0, 5); }, {"--loss-scale", "power of two"});
}

// ---- through the trainer
// -------------------------------------------------------------------------

class LossScaling : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = (dir_ / "data.h5").string();
    test::write_quadrants_dataset(data_, 256, 32, /*side=*/28, /*num_classes=*/10);
  }
  TrainConfig config(const std::string& name) const {
    TrainConfig c;
    c.data = data_;
    c.model = "custom";
    c.layers = {{"flatten"}, {"linear", 784, 32}, {"relu"}, {"linear", 32, 10}};
    c.batch_size = 32;
    c.epochs = 2;  // 8 steps each
    c.steps = 12;
    c.optimizer = "adamw";
    c.lr = 1e-3;
    c.seed = 9;
    c.threads = 1;
    c.quiet = true;
    c.eval = false;
    c.precision = "fp16";
    c.metrics = (dir_ / (name + ".jsonl")).string();
    return c;
  }
  // The step lines of a run's metrics.
  std::vector<nlohmann::json> steps_of(const TrainConfig& c) const {
    std::vector<nlohmann::json> out;
    std::ifstream in(c.metrics);
    for (std::string line; std::getline(in, line);) {
      nlohmann::json j = nlohmann::json::parse(line);
      if (j.at("event") == "step") out.push_back(j);
    }
    return out;
  }

  test::TempDir dir_;
  std::string data_;
  const Context ctx_ = Context::create(Device::cpu(), 1);
  std::unique_ptr<comm::Communicator> world_ = comm::make_communicator("local");
};

TEST_F(LossScaling, OverflowSkipsTheStepHalvesTheScaleAndLeavesParametersBitwise) {
  // 2^24 overflows fp16 (65504) at once (dlogits of ~0.1 become ~1.7e6): the first steps are
  // skipped until the scale fits; then it doubles every 4 steps without overflow.
  TrainConfig c = config("overflow");
  c.loss_scale = 0x1p24;
  c.loss_scale_growth_interval = 4;
  Trainer t(c, ctx_, *world_);
  const std::vector<float> initial = t.model().flat_params().to_vector();
  const TrainResult r = t.run();
  const std::vector<nlohmann::json> steps = steps_of(c);
  ASSERT_EQ(steps.size(), 12u);
  int skipped = 0;
  double scale = 0x1p24;
  for (const nlohmann::json& s : steps) {
    EXPECT_EQ(s.at("loss_scale").get<double>(), scale) << s.dump();
    if (s.contains("skipped")) {
      EXPECT_EQ(s.at("skipped"), "overflow");
      ++skipped;
      scale /= 2;
    }
  }
  ASSERT_GE(skipped, 3) << "2^24 did not overflow";
  ASSERT_LT(skipped, 12) << "the scale never came down to one that fits";
  const std::int64_t good = 12 - skipped;
  EXPECT_EQ(t.loss_scaler()->scale(), scale * std::pow(2.0, good / 4)) << "growth after 4 steps";
  EXPECT_EQ(t.loss_scaler()->overflows(), skipped);
  EXPECT_TRUE(std::isfinite(r.last_loss));
  // Skipped steps are not optimizer steps (AdamW's bias correction counts only the others).
  EXPECT_EQ(t.optimizer().step_count(), good);
  EXPECT_NE(t.model().flat_params().to_vector(), initial) << "no step was taken";
}

TEST_F(LossScaling, SkippedStepsLeaveParametersAndOptimizerStateUnchanged) {
  TrainConfig c = config("skip");
  c.loss_scale = 0x1p64;
  c.steps = 3;  // every one of them overflows
  Trainer t(c, ctx_, *world_);
  const std::vector<float> initial = t.model().flat_params().to_vector();
  t.run();
  EXPECT_EQ(t.model().flat_params().to_vector(), initial);
  EXPECT_EQ(t.optimizer().step_count(), 0);
  EXPECT_EQ(t.loss_scaler()->scale(), 0x1p61);
}

TEST_F(LossScaling, ResumeContinuesTheScaleAndItsCountExactly) {
  TrainConfig c = config("straight");
  c.loss_scale = 0x1p20;
  c.loss_scale_growth_interval = 3;
  Trainer straight(c, ctx_, *world_);
  straight.run();

  TrainConfig first = config("first");
  first.loss_scale = c.loss_scale;
  first.loss_scale_growth_interval = 3;
  first.steps = 7;  // mid-interval: the count matters
  first.checkpoint_dir = (dir_ / "ckpt").string();
  {
    Trainer t(first, ctx_, *world_);
    t.run();
  }
  TrainConfig second = first;
  second.metrics = (dir_ / "second.jsonl").string();
  second.steps = 12;
  second.resume = "auto";
  Trainer resumed(second, ctx_, *world_);
  resumed.run();
  EXPECT_EQ(resumed.model().flat_params().to_vector(), straight.model().flat_params().to_vector());
  EXPECT_EQ(resumed.loss_scaler()->scale(), straight.loss_scaler()->scale());
  EXPECT_EQ(resumed.loss_scaler()->growth_tracker(), straight.loss_scaler()->growth_tracker());
  const std::vector<nlohmann::json> a = steps_of(c), b = steps_of(second);
  ASSERT_EQ(b.size(), 5u);
  for (std::size_t i = 0; i < b.size(); ++i) {
    EXPECT_EQ(b[i].at("loss_scale"), a[7 + i].at("loss_scale")) << "step " << 8 + i;
    EXPECT_EQ(b[i].at("loss"), a[7 + i].at("loss")) << "step " << 8 + i;
  }
}

// --tf32 reaches the kernels through the Context (Context::allow_tf32): a Trainer whose config and
// Context disagree would drop the flag silently, so it refuses to start; a CPU Context cannot
// allow TF32 at all (device_test), and `train --tf32` on the CPU is refused by name
// (precision_test.sh).
TEST_F(LossScaling, Tf32FlagAndContextMustAgree) {
  TrainConfig c = config("tf32");
  c.precision = "fp32";
  c.tf32 = true;
  test::expect_error([&] { Trainer t(c, ctx_, *world_); },
                     {"'tf32' is on", "does not allow", "would be ignored"});
}

}  // namespace
}  // namespace dpt::nn
