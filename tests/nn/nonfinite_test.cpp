// SPDX-License-Identifier: MIT
// Non-finite gradients and parameters, one rank: abort names step, rank and parameter; skip
// leaves parameters and optimizer state bitwise unchanged and counts the step, up to the limit;
// exact mode checks each micro-shard's gradients; checkpoints are never written with, nor resumed
// from, a NaN or Inf; the parameter check's messages. Multi-rank cases: nonfinite_fault_test.sh.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include "comm/communicator.h"
#include "nn/train/checkpoint.h"
#include "nn/train/nonfinite.h"
#include "nn/train/param_check.h"
#include "nn/train/trainer.h"
#include "runtime/fault.h"
#include "testing/test_util.h"

namespace dpt::nn {
namespace {

using ::testing::HasSubstr;

std::string bytes_of(const Tensor& t) {
  return std::string(static_cast<const char*>(t.raw_data()), t.size_bytes());
}

// Parameters, every optimizer slot and the optimizer's step count.
std::string state_of(Trainer& t) {
  std::string s = bytes_of(t.model().flat_params());
  for (const std::string& name : t.optimizer().slot_names()) s += bytes_of(t.optimizer().slot(name));
  return s + std::to_string(t.optimizer().step_count());
}

class Nonfinite : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = (dir_ / "data.h5").string();
    test::write_quadrants_dataset(data_, 256, 32, /*side=*/28, /*num_classes=*/10);
  }
  void TearDown() override { fault::set_for_testing(""); }

  TrainConfig config() const {
    TrainConfig c;
    c.data = data_;
    c.model = "custom";
    c.layers = {{"flatten"}, {"linear", 784, 16}, {"relu"}, {"linear", 16, 10}};
    c.batch_size = 32;
    c.steps = 4;
    c.optimizer = "adamw";
    c.lr = 1e-3;
    c.seed = 3;
    c.threads = 1;
    c.quiet = true;
    c.eval = false;
    return c;
  }

  std::string run_expecting_error(const TrainConfig& c) {
    try {
      Trainer t(c, ctx_, *world_);
      t.run();
    } catch (const Error& e) {
      return e.what();
    }
    ADD_FAILURE() << "training ended without an error";
    return {};
  }

  test::TempDir dir_;
  std::string data_;
  const Context ctx_ = Context::create(Device::cpu(), 1);
  std::unique_ptr<comm::Communicator> world_ = comm::make_communicator("local");
};

// The failure of the study: a NaN input with a ReLU model keeps the loss finite while the weights
// become NaN; the job went on and exited 0.
TEST_F(Nonfinite, AbortNamesStepRankAndParameter) {
  fault::set_for_testing("nan@forward:step=2");
  const std::string what = run_expecting_error(config());
  EXPECT_THAT(what, HasSubstr("non-finite gradients at step 2"));
  EXPECT_THAT(what, HasSubstr("rank 0: NaN or Inf in layers.1.weight (element "));
  EXPECT_THAT(what, HasSubstr("before the all-reduce"));
}

TEST_F(Nonfinite, AbortInExactModeNamesTheMicroShard) {
  fault::set_for_testing("inf@forward:step=1");
  TrainConfig c = config();
  c.exact = true;
  c.shard_size = 8;  // four micro-shards per step on this one rank
  Context exact_ctx = Context::create(Device::cpu(), 1);
  exact_ctx.set_thread_invariant(true);
  std::string what;
  try {
    Trainer t(c, exact_ctx, *world_);
    t.run();
    ADD_FAILURE() << "training ended without an error";
  } catch (const Error& e) {
    what = e.what();
  }
  EXPECT_THAT(what, HasSubstr("non-finite gradients at step 1"));
  EXPECT_THAT(what, HasSubstr("micro-shard 0"));
}

TEST_F(Nonfinite, SkipLeavesParametersAndOptimizerStateBitwiseUnchanged) {
  const test::AllowWarnings skipping_warns;  // each skipped step logs a warning
  fault::set_for_testing("nan@allreduce:step=1");
  TrainConfig c = config();
  c.nonfinite = "skip";
  Trainer t(c, ctx_, *world_);
  ASSERT_TRUE(t.step().has_value());  // step 0
  const std::string before = state_of(t);
  ASSERT_TRUE(t.step().has_value());  // step 1: its gradients hold a NaN
  EXPECT_TRUE(state_of(t) == before) << "the skipped step changed parameters or optimizer state";
  ASSERT_TRUE(t.step().has_value());  // step 2 trains again
  EXPECT_FALSE(state_of(t) == before);
  EXPECT_EQ(t.optimizer().step_count(), 2);
}

TEST_F(Nonfinite, SkippedStepsAreCountedInTheSummary) {
  const test::AllowWarnings skipping_warns;  // each skipped step logs a warning
  fault::set_for_testing("inf@forward:step=1");
  TrainConfig c = config();
  c.nonfinite = "skip";
  c.metrics = (dir_ / "m.jsonl").string();
  Trainer t(c, ctx_, *world_);
  const TrainResult r = t.run();
  EXPECT_EQ(r.steps, 4);
  EXPECT_EQ(r.nonfinite_skipped, 1);
  EXPECT_EQ(t.optimizer().step_count(), 3);
  EXPECT_TRUE(std::isfinite(r.last_loss));
  std::ifstream in(c.metrics);
  std::stringstream text;
  text << in.rdbuf();
  const std::string metrics = text.str();
  EXPECT_THAT(metrics, HasSubstr("\"nonfinite_skipped\":1"));
  EXPECT_THAT(metrics, HasSubstr("\"skipped\":\"nonfinite\",\"step\":2"));
}

TEST_F(Nonfinite, SkipStopsPastTheLimit) {
  const test::AllowWarnings skipping_warns;  // each skipped step logs a warning
  fault::set_for_testing("nan@allreduce:step=0,nan@allreduce:step=2");
  TrainConfig c = config();
  c.nonfinite = "skip";
  c.nonfinite_skip_limit = 1;
  const std::string what = run_expecting_error(c);
  EXPECT_THAT(what, HasSubstr("non-finite gradients at step 2"));
  EXPECT_THAT(what, HasSubstr("1 step(s) were skipped already"));
  EXPECT_THAT(what, HasSubstr("--nonfinite-skip-limit 1"));
}

TEST_F(Nonfinite, ParameterCheckNamesANonFiniteParameter) {
  Trainer t(config(), ctx_, *world_);
  ParamCheck check(ctx_, *world_, t.model(), &t.optimizer());
  check.check(0);  // finite: nothing to say
  t.model().parameters()[2]->value.data<float>()[3] = std::numeric_limits<float>::infinity();
  try {
    check.check(7);
    ADD_FAILURE() << "an infinite parameter passed the check";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("parameter layers.3.weight (element 3 of 160) holds a NaN or "
                                    "Inf after step 7"));
  }
}

TEST_F(Nonfinite, NoCheckpointWithANonFiniteValue) {
  TrainConfig c = config();
  Trainer t(c, ctx_, *world_);
  t.step();
  t.model().parameters()[0]->value.data<float>()[5] = std::numeric_limits<float>::quiet_NaN();
  try {
    capture_checkpoint(c, layers_of(c), t.model(), t.optimizer(), 1e-3, TrainPosition{3, 0}, 1);
    ADD_FAILURE() << "a checkpoint holding a NaN was captured";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("not writing the checkpoint of step 3: /model/layers.1.weight "
                                    "holds NaN at element 5 of 12544"));
  }
}

// The other failure of the study: a checkpoint holding a NaN weight resumed and kept it.
TEST_F(Nonfinite, ResumeFromANonFiniteCheckpointIsRefused) {
  TrainConfig c = config();
  Trainer donor(c, ctx_, *world_);
  donor.step();
  io::CheckpointState state = capture_checkpoint(c, layers_of(c), donor.model(),
                                                 donor.optimizer(), 1e-3, TrainPosition{1, 0}, 1);
  Trainer target(c, ctx_, *world_);
  const std::string before = state_of(target);
  state.model[1].value.data<float>()[2] = -std::numeric_limits<float>::infinity();
  try {
    restore_checkpoint(state, "bad.h5", target.model(), &target.optimizer());
    ADD_FAILURE() << "a checkpoint holding -Inf was restored";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("bad.h5: /model/layers.1.bias holds -Inf at element 2 of 16: "
                                    "refusing to resume"));
  }
  state.model[1].value.data<float>()[2] = 0.0f;
  state.slots.back().value.data<float>()[0] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(restore_checkpoint(state, "bad.h5", target.model(), &target.optimizer()), Error);
  EXPECT_TRUE(state_of(target) == before) << "a refused restore changed the trainer";
}

TEST(ParamDifference, NamesTheFirstTensorAndTheRanks) {
  const std::vector<std::string> names = {"layers.1.weight", "layers.1.bias"};
  EXPECT_EQ(describe_param_difference(names, {{1, 2}, {1, 2}, {1, 2}}, 4), "");
  EXPECT_EQ(describe_param_difference(names, {{1, 2}, {1, 3}, {1, 2}}, 4),
            "parameters differ between ranks after step 4: first at layers.1.bias; rank 1 "
            "differs from rank 0 (ranks 0, 2 agree)");
  EXPECT_EQ(describe_param_difference(names, {{1, 2}, {5, 2}}, 9),
            "parameters differ between ranks after step 9: first at layers.1.weight; rank 1 "
            "differs from rank 0");
  EXPECT_EQ(describe_param_difference(names, {{1, 2}, {5, 2}, {1, 2}, {6, 2}}, 0),
            "parameters differ between ranks after step 0: first at layers.1.weight; ranks 1, 3 "
            "differ from rank 0 (ranks 0, 2 agree)");
}

}  // namespace
}  // namespace dpt::nn
