// SPDX-License-Identifier: MIT
// The trainer under mpirun (1, 2 and 4 ranks): 20 steps on N ranks end at the parameters of the
// same 20 steps on one rank, after 50 steps every rank holds bitwise the same parameters, and a
// resume from a checkpoint continues bitwise.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "nn/train/trainer.h"
#include "testing/mpi_test_util.h"
#include "testing/test_util.h"

namespace dpt::nn {
namespace {

// Rank 0 writes a small dataset (default: 4 classes of 8x8 images; side 28 and 10 classes fit
// cnn and mlp); every rank gets its path.
std::string shared_dataset(comm::Communicator& world, const test::TempDir& dir, int train = 512,
                           int side = 8, int classes = 4) {
  std::string path = (dir / ("data" + std::to_string(side) + ".h5")).string();
  if (world.rank() == 0) test::write_quadrants_dataset(path, train, 64, side, classes);
  path = world.all_gather(path)[0];
  world.barrier();  // the file is complete before anyone opens it
  return path;
}

TrainConfig config_for(const std::string& data, std::int64_t steps) {
  TrainConfig c;
  c.data = data;
  c.model = "custom";
  c.layers = {{"conv2d", 1, 4, 3, 1, 1}, {"relu"}, {"maxpool2d", 0, 0, 2}, {"flatten"},
              {"linear", 64, 32},        {"relu"}, {"dropout", 0, 0, 0, 0, 0, 0.2f},
              {"linear", 32, 4}};
  c.batch_size = 16;
  c.steps = steps;
  c.epochs = 10;
  c.optimizer = "sgd";
  c.lr = 0.05;
  c.momentum = 0.9;
  c.seed = 9;
  c.threads = 1;
  c.quiet = true;
  c.eval = false;
  c.bucket_mb = 0.001;  // several buckets even for this small model
  return c;
}

TEST(TrainerMpi, TwentyStepsOnNRanksMatchOneRank) {
  comm::Communicator& world = test::world();
  const test::TempDir dir;
  const std::string data = shared_dataset(world, dir);
  const Context ctx = Context::create(Device::cpu(), 1);
  for (std::int64_t accumulate : {1, 2}) {
    TrainConfig c = config_for(data, 20);
    c.accumulate = accumulate;
    Trainer distributed(c, ctx, world);
    distributed.run();
    const auto local = comm::make_communicator("local");
    Trainer single(config_for(data, 20), ctx, *local);
    single.run();
    EXPECT_TRUE(test::all_close(distributed.model().flat_params(), single.model().flat_params(),
                                1e-4, 1e-6))
        << "accumulate " << accumulate << ", rank " << world.rank() << " of "
        << world.world_size();
  }
  // Every rank's one-rank run reads the dataset: rank 0 must not remove it (leaving `dir`'s
  // scope) while a slower rank still trains alone.
  world.barrier();
}

TEST(TrainerMpi, ParametersStayBitwiseIdenticalAcrossRanks) {
  comm::Communicator& world = test::world();
  const test::TempDir dir;
  const std::string data = shared_dataset(world, dir);
  const Context ctx = Context::create(Device::cpu(), 1);
  Trainer t(config_for(data, 50), ctx, world);
  t.run();
  const Tensor& p = t.model().flat_params();
  const std::string bytes(static_cast<const char*>(p.raw_data()), p.size_bytes());
  const std::vector<std::string> all = world.all_gather(bytes);
  for (std::size_t r = 1; r < all.size(); ++r) {
    EXPECT_TRUE(all[r] == all[0]) << "rank " << r << " differs from rank 0";
  }
}

TEST(TrainerMpi, RanksWithDifferentConfigsStopWithTheDifference) {
  comm::Communicator& world = test::world();
  if (world.world_size() == 1) GTEST_SKIP() << "needs two ranks to disagree";
  const test::TempDir dir;
  const std::string data = shared_dataset(world, dir);
  const Context ctx = Context::create(Device::cpu(), 1);
  TrainConfig c = config_for(data, 1);
  if (world.rank() == 1) c.lr = 0.5;
  try {
    Trainer t(c, ctx, world);
    FAIL() << "expected ranks to disagree";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("rank 1: config.lr = 0.5"), std::string::npos) << m;
    EXPECT_NE(m.find("rank 0: config.lr = 0.05"), std::string::npos) << m;
  }
}

std::string bytes_of(const Tensor& t) {
  return std::string(static_cast<const char*>(t.raw_data()), t.size_bytes());
}

// 40 steps straight versus 20 steps, stop, resume, 20 steps: bitwise the same parameters and
// momentum on every rank. Then the N-rank checkpoint of step 20 resumed on one rank gives the
// N-rank result to rounding (the world size may change when the global batch allows it).
TEST(TrainerMpi, ResumeIsBitwiseAndMayChangeTheWorldSize) {
  comm::Communicator& world = test::world();
  const test::TempDir dir;
  const std::string data = shared_dataset(world, dir);
  const std::string ckpt = world.all_gather((dir / "ckpt").string())[0];
  const Context ctx = Context::create(Device::cpu(), 1);

  Trainer straight(config_for(data, 40), ctx, world);
  straight.run();

  TrainConfig first = config_for(data, 40);
  first.checkpoint_dir = ckpt;
  first.checkpoint_every = 20;
  first.keep_last = 0;
  {
    Trainer t(first, ctx, world);
    t.run();
  }
  TrainConfig second = config_for(data, 40);
  second.resume = ckpt + "/step-20.h5";
  Trainer resumed(second, ctx, world);
  const TrainResult r = resumed.run();
  EXPECT_EQ(r.first_step, 20);
  EXPECT_TRUE(bytes_of(resumed.model().flat_params()) == bytes_of(straight.model().flat_params()))
      << "parameters after resume differ from the uninterrupted run on rank " << world.rank();
  EXPECT_TRUE(bytes_of(resumed.optimizer().slot("momentum_buffer")) ==
              bytes_of(straight.optimizer().slot("momentum_buffer")))
      << "momentum after resume differs on rank " << world.rank();

  if (world.rank() == 0) {
    const auto alone = comm::make_communicator("local");
    TrainConfig elsewhere = second;
    if (world.world_size() > 1) {
      // Not exact mode: a resume on another world size is refused unless asked for.
      EXPECT_THROW(Trainer(elsewhere, ctx, *alone), Error);
      elsewhere.allow_inexact_resume = true;
    }
    const test::AllowWarnings inexact_resume_warns;
    Trainer single(elsewhere, ctx, *alone);
    single.run();
    EXPECT_TRUE(test::all_close(single.model().flat_params(), straight.model().flat_params(), 1e-4,
                                1e-6))
        << "the " << world.world_size() << "-rank checkpoint resumed on one rank";
  }
  world.barrier();
}

// The same for the reference models on 28x28 images: `cnn` with dropout (AdamW) and `mlp` (SGD
// with momentum), on 1 and 2 ranks (4 oversubscribed ranks would only repeat it, slowly).
TEST(TrainerMpi, ResumeOfTheReferenceModelsIsBitwise) {
  comm::Communicator& world = test::world();
  if (world.world_size() > 2) GTEST_SKIP() << "run on 1 and 2 ranks";
  const test::TempDir dir;
  const std::string data = shared_dataset(world, dir, 320, /*side=*/28, /*classes=*/10);
  const Context ctx = Context::create(Device::cpu(), 1);
  for (const std::string model : {"cnn", "mlp"}) {
    auto config = [&](const std::string& ckpt) {
      TrainConfig c;
      c.data = data;
      c.model = model;
      c.dropout = model == "cnn" ? 0.25 : 0.0;
      c.optimizer = model == "cnn" ? "adamw" : "sgd";
      c.lr = model == "cnn" ? 1e-3 : 0.02;
      c.momentum = model == "cnn" ? 0.0 : 0.9;
      c.batch_size = 32;
      c.epochs = 4;
      c.steps = 40;
      c.seed = 3;
      c.threads = 1;
      c.quiet = true;
      c.eval = false;
      c.checkpoint_dir = ckpt;
      return c;
    };
    const std::string ckpt = world.all_gather((dir / (model + "-ckpt")).string())[0];
    Trainer straight(config(""), ctx, world);
    straight.run();
    TrainConfig first = config(ckpt);
    first.checkpoint_every = 20;
    first.keep_last = 0;
    {
      Trainer t(first, ctx, world);
      t.run();
    }
    TrainConfig second = config("");
    second.resume = ckpt + "/step-20.h5";
    Trainer resumed(second, ctx, world);
    resumed.run();
    EXPECT_TRUE(bytes_of(resumed.model().flat_params()) == bytes_of(straight.model().flat_params()))
        << model << ": parameters after resume differ on rank " << world.rank();
    for (const std::string& slot : straight.optimizer().slot_names()) {
      EXPECT_TRUE(bytes_of(resumed.optimizer().slot(slot)) == bytes_of(straight.optimizer().slot(slot)))
          << model << ": optimizer slot " << slot << " differs on rank " << world.rank();
    }
    EXPECT_EQ(resumed.optimizer().step_count(), straight.optimizer().step_count());
  }
}

// --timeline on `mlp` with 1 MB buckets: one process per rank with compute and communication
// tracks, a span per layer forward and backward, and (with overlap) bucket all-reduces that begin
// before the step's backward has finished; with --no-overlap none does.
TEST(TrainerMpi, TimelineShowsAllReducesDuringBackward) {
  comm::Communicator& world = test::world();
  if (world.world_size() != 2) GTEST_SKIP() << "checked on 2 ranks";
  const test::TempDir dir;
  const std::string data = shared_dataset(world, dir, 256, /*side=*/28, /*classes=*/10);
  const Context ctx = Context::create(Device::cpu(), 1);
  for (const bool overlap : {true, false}) {
    TrainConfig c;
    c.data = data;
    c.model = "mlp";
    c.batch_size = 64;
    c.steps = 4;
    c.optimizer = "sgd";
    c.lr = 0.01;
    c.threads = 1;
    c.quiet = true;
    c.eval = false;
    c.bucket_mb = 1.0;
    c.no_overlap = !overlap;
    c.timeline = world.all_gather((dir / (overlap ? "on.json" : "off.json")).string())[0];
    c.timeline_steps = 3;
    c.metrics = world.all_gather((dir / (overlap ? "on.jsonl" : "off.jsonl")).string())[0];
    Trainer t(c, ctx, world);
    t.run();
    if (world.rank() != 0) continue;

    // The summary splits communication into exposed and total, and reports the hidden share.
    // Every step waits for its last bucket after backward, so the exposed time is never 0; the
    // hidden share is the one the two times give.
    std::ifstream metrics(c.metrics);
    std::string line, last;
    while (std::getline(metrics, line)) last = line;
    const auto summary = nlohmann::json::parse(last);
    const auto& ms = summary.at("step_ms");
    const double total = ms.at("comm_total").get<double>();
    const double exposed = ms.at("comm_exposed").get<double>();
    EXPECT_GT(total, 0.0);
    EXPECT_GT(exposed, 0.0);
    const double hidden = summary.at("overlap").get<double>();
    EXPECT_NEAR(hidden, std::clamp(1.0 - exposed / total, 0.0, 1.0), 1e-12)
        << "exposed " << exposed << " ms of " << total << " ms";
    if (!overlap) {
      EXPECT_LT(hidden, 0.05) << "nothing can hide without overlap";
    }

    std::ifstream in(c.timeline);
    const auto trace = nlohmann::json::parse(in).at("traceEvents");
    std::map<int, std::vector<nlohmann::json>> spans;  // by rank
    std::set<int> named;
    for (const auto& e : trace) {
      if (e.at("ph") == "M" && e.at("name") == "process_name") named.insert(e.at("pid").get<int>());
      if (e.at("ph") == "X") spans[e.at("pid").get<int>()].push_back(e);
    }
    EXPECT_EQ(named, (std::set<int>{0, 1}));
    for (int rank = 0; rank < 2; ++rank) {
      int steps = 0, overlapping_steps = 0;
      std::set<std::string> layers;
      for (const auto& step : spans[rank]) {
        if (step.at("cat") != "step") continue;
        ++steps;
        const double begin = step.at("ts"), end = begin + step.at("dur").get<double>();
        double backward_end = begin;
        for (const auto& e : spans[rank]) {
          const double ts = e.at("ts");
          if (e.at("cat") == "backward" && ts >= begin && ts <= end) {
            backward_end = std::max(backward_end, ts + e.at("dur").get<double>());
            layers.insert(e.at("name").get<std::string>());
          }
        }
        bool any = false;
        for (const auto& e : spans[rank]) {
          const double ts = e.at("ts");
          if (e.at("cat") == "allreduce" && e.at("tid") == 1 && ts >= begin && ts < backward_end) {
            any = true;
          }
        }
        overlapping_steps += any ? 1 : 0;
      }
      EXPECT_EQ(steps, 3) << "rank " << rank;
      EXPECT_TRUE(layers.count("layers.1 Linear(784 -> 2048, relu)")) << "rank " << rank;
      // layers.0 (Flatten) is under the first layer with parameters: it has no backward.
      EXPECT_EQ(layers.size(), 7u) << "one backward span per layer from layers.1, rank " << rank;
      if (overlap) {
        EXPECT_GE(overlapping_steps, 1) << "no all-reduce began during backward on rank " << rank;
      } else {
        EXPECT_EQ(overlapping_steps, 0) << "an all-reduce began during backward on rank " << rank;
      }
    }

    // Rank imbalance (Note [Rank imbalance in the timeline]): per step, each rank's compute time
    // and the slowest rank, consistent across the ranks; a counter per rank and step.
    std::map<std::string, std::map<int, nlohmann::json>> step_args;  // step name -> rank -> args
    std::map<int, int> counters;
    for (const auto& e : trace) {
      if (e.at("ph") == "C" && e.at("name") == "compute ms") {
        ++counters[e.at("pid").get<int>()];
        EXPECT_GT(e.at("args").at("compute").get<double>(), 0.0);
      }
      if (e.at("ph") == "X" && e.at("cat") == "step") {
        step_args[e.at("name").get<std::string>()][e.at("pid").get<int>()] = e.at("args");
      }
    }
    EXPECT_EQ(counters, (std::map<int, int>{{0, 3}, {1, 3}}));
    EXPECT_EQ(step_args.size(), 3u);
    for (const auto& [name, by_rank] : step_args) {
      ASSERT_EQ(by_rank.size(), 2u) << name;
      const double c0 = by_rank.at(0).at("compute_ms"), c1 = by_rank.at(1).at("compute_ms");
      EXPECT_GT(c0, 0.0) << name;
      EXPECT_GT(c1, 0.0) << name;
      const int slowest = c1 > c0 ? 1 : 0;
      for (int rank = 0; rank < 2; ++rank) {
        const auto& args = by_rank.at(rank);
        EXPECT_EQ(args.at("slowest_rank").get<int>(), slowest) << name << " rank " << rank;
        EXPECT_DOUBLE_EQ(args.at("behind_slowest_ms").get<double>(),
                         std::max(c0, c1) - args.at("compute_ms").get<double>())
            << name << " rank " << rank;
      }
    }
    const auto& per_rank = summary.at("rank_compute_ms");
    ASSERT_EQ(per_rank.size(), 2u);
    const double a = per_rank[0], b = per_rank[1];
    EXPECT_GT(a, 0.0);
    EXPECT_GT(b, 0.0);
    EXPECT_DOUBLE_EQ(summary.at("rank_imbalance").get<double>(),
                     (std::max(a, b) - std::min(a, b)) / std::max(a, b));
  }
}

}  // namespace
}  // namespace dpt::nn
