// SPDX-License-Identifier: MIT
// The trainer on a small synthetic dataset: it learns, it is deterministic, micro-batches do not
// change the result, metrics lines have the documented fields, and bad set-ups fail clearly.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>

#include "comm/communicator.h"
#include "nn/train/trainer.h"
#include "runtime/build_info.h"
#include "testing/test_util.h"

namespace dpt::nn {
namespace {

std::string write_quadrants(const test::TempDir& dir, int train_n, int test_n) {
  const std::string path = (dir / "quadrants.h5").string();
  test::write_quadrants_dataset(path, train_n, test_n);
  return path;
}

TrainConfig small_config(const std::string& data) {
  TrainConfig c;
  c.data = data;
  c.model = "custom";
  c.layers = {{"conv2d", 1, 4, 3, 1, 1}, {"relu"}, {"maxpool2d", 0, 0, 2}, {"flatten"},
              {"linear", 64, 16},        {"relu"}, {"dropout", 0, 0, 0, 0, 0, 0.1f},
              {"linear", 16, 4}};
  c.batch_size = 16;
  c.epochs = 3;
  c.optimizer = "sgd";
  c.lr = 0.05;
  c.momentum = 0.9;
  c.seed = 5;
  c.threads = 1;
  c.quiet = true;
  return c;
}

TEST(Trainer, LearnsAndEvaluates) {
  test::TempDir dir;
  const Context ctx = Context::create(Device::cpu(), 1);
  const auto world = comm::make_communicator("local");
  TrainConfig c = small_config(write_quadrants(dir, 256, 64));
  c.metrics = (dir / "m.jsonl").string();
  Trainer t(c, ctx, *world);
  const TrainResult r = t.run();
  EXPECT_EQ(r.steps, 3 * (256 / 16));
  EXPECT_LT(r.last_loss, 0.5 * r.first_loss);
  ASSERT_TRUE(r.last_eval.has_value());
  EXPECT_GT(r.last_eval->accuracy, 0.9);
  EXPECT_EQ(r.last_eval->samples, 64);

  std::ifstream in(c.metrics);
  std::string line;
  int steps = 0, evals = 0, summaries = 0;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    const std::string event = j.at("event");
    if (event == "step") {
      ++steps;
      EXPECT_EQ(j.at("step").get<int>(), steps);
      for (const char* k : {"epoch", "loss", "lr", "samples_per_sec"}) EXPECT_TRUE(j.contains(k)) << k;
    } else if (event == "eval") {
      ++evals;
      EXPECT_EQ(j.at("split"), "test");
      EXPECT_EQ(j.at("epoch").get<int>(), evals - 1);
      EXPECT_EQ(j.at("step").get<int>(), evals * 16);
      EXPECT_TRUE(j.contains("loss") && j.contains("accuracy"));
    } else {
      ASSERT_EQ(event, "summary");
      ++summaries;
      EXPECT_EQ(j.at("steps").get<int>(), 48);
      for (const char* k : {"forward", "backward", "optimizer"}) {
        EXPECT_GT(j.at("step_ms").at(k).get<double>(), 0.0) << k;  // each phase takes time
      }
      EXPECT_TRUE(j.at("step_ms").contains("data_wait"));
      EXPECT_GT(j.at("samples_per_sec").get<double>(), 0.0);
      for (const BuildFact& fact : build_facts()) {  // the build id, as the start-up agreement
        EXPECT_EQ(j.at("build").at(std::string(fact.key)), fact.value) << fact.key;
      }
    }
  }
  EXPECT_EQ(steps, 48);
  EXPECT_EQ(evals, 3);
  EXPECT_EQ(summaries, 1);
}

TEST(Trainer, SameSeedIsBitwiseIdenticalAndMicroBatchesMatch) {
  test::TempDir dir;
  const Context ctx = Context::create(Device::cpu(), 1);
  const auto world = comm::make_communicator("local");
  const std::string data = write_quadrants(dir, 128, 16);
  TrainConfig c = small_config(data);
  c.epochs = 1;
  c.eval = false;
  Trainer a(c, ctx, *world), b(c, ctx, *world);
  a.run();
  b.run();
  EXPECT_EQ(a.model().flat_params().to_vector(), b.model().flat_params().to_vector());

  TrainConfig micro = c;
  micro.micro_batch = 4;  // dropout masks are keyed by sample, so the split changes nothing
  Trainer m(micro, ctx, *world);
  m.run();
  EXPECT_TRUE(test::all_close(m.model().flat_params(), a.model().flat_params(), 1e-5, 1e-6));

  TrainConfig other = c;
  other.seed = 6;
  Trainer o(other, ctx, *world);
  o.run();
  EXPECT_NE(o.model().flat_params().to_vector(), a.model().flat_params().to_vector());
}

// Note [Training throughput]: samples/s counts the steps after the warm-up and their time only;
// evaluation and checkpoints are timed apart. The evaluation here (4096 samples after every
// 8-step epoch) costs more than the training steps, so counting it would show.
TEST(Trainer, ThroughputLeavesOutEvaluationAndCheckpoints) {
  test::TempDir dir;
  const Context ctx = Context::create(Device::cpu(), 1);
  const auto world = comm::make_communicator("local");
  TrainConfig c = small_config(write_quadrants(dir, 128, 4096));
  c.epochs = 3;
  c.checkpoint_dir = (dir / "ckpt").string();
  c.checkpoint_every = 4;
  c.metrics = (dir / "m.jsonl").string();
  Trainer t(c, ctx, *world);
  const TrainResult r = t.run();
  ASSERT_EQ(r.steps, 24);
  EXPECT_EQ(r.timed_steps, 24 - 5);
  EXPECT_GT(r.eval_seconds, 0.0);
  EXPECT_GT(r.checkpoint_seconds, 0.0);
  EXPECT_GT(r.train_seconds, 0.0);
  // The three never overlap: were evaluation or checkpoints inside train_seconds, this would not
  // hold (both run after the warm-up, between timed steps).
  EXPECT_LE(r.train_seconds + r.eval_seconds + r.checkpoint_seconds, r.wall_seconds);
  EXPECT_DOUBLE_EQ(r.samples_per_sec, 19.0 * 16.0 / r.train_seconds);

  std::ifstream in(c.metrics);
  nlohmann::json summary;
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.at("event") == "summary") summary = j;
  }
  ASSERT_FALSE(summary.is_null());
  EXPECT_EQ(summary.at("timed_steps").get<int>(), 19);
  EXPECT_DOUBLE_EQ(summary.at("eval_s").get<double>(), r.eval_seconds);
  EXPECT_DOUBLE_EQ(summary.at("checkpoint_s").get<double>(), r.checkpoint_seconds);
  EXPECT_DOUBLE_EQ(summary.at("train_s").get<double>(), r.train_seconds);
  EXPECT_FALSE(summary.at("step_ms").contains("checkpoint"));
}

TEST(Trainer, StepsLimitStopsEarly) {
  test::TempDir dir;
  const Context ctx = Context::create(Device::cpu(), 1);
  const auto world = comm::make_communicator("local");
  TrainConfig c = small_config(write_quadrants(dir, 128, 16));
  c.steps = 5;
  Trainer t(c, ctx, *world);
  const TrainResult r = t.run();
  EXPECT_EQ(r.steps, 5);
  EXPECT_TRUE(r.last_eval.has_value());  // evaluated at the end of a partial epoch
}

TEST(Trainer, DatasetSmallerThanOneBatchFails) {
  test::TempDir dir;
  const Context ctx = Context::create(Device::cpu(), 1);
  const auto world = comm::make_communicator("local");
  TrainConfig c = small_config(write_quadrants(dir, 12, 4));
  try {
    Trainer t(c, ctx, *world);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("quadrants.h5"), std::string::npos) << m;
    EXPECT_NE(m.find("fewer than one global batch"), std::string::npos) << m;
  }
}

TEST(Trainer, ModelAndDatasetClassesMustAgree) {
  test::TempDir dir;
  const Context ctx = Context::create(Device::cpu(), 1);
  const auto world = comm::make_communicator("local");
  TrainConfig c = small_config(write_quadrants(dir, 32, 4));
  c.layers.back().out = 5;
  try {
    Trainer t(c, ctx, *world);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("4 classes"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace dpt::nn
