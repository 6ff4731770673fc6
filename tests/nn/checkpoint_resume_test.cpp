// SPDX-License-Identifier: MIT
// Checkpoint and resume through the trainer, one rank: 40 steps straight equal 20 steps, stop,
// resume, 20 steps, bitwise (parameters and optimizer state), for `cnn` with dropout and `mlp`;
// the same after a crash at each point of the write protocol and after a stop signal; a resume
// that does not fit fails before anything is changed.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "comm/communicator.h"
#include "nn/train/checkpoint.h"
#include "nn/train/trainer.h"
#include "runtime/io/checkpoint_dir.h"
#include "runtime/io/loader_testing.h"
#include "runtime/stop_signals.h"
#include "testing/test_util.h"

namespace dpt::nn {
namespace {

using ::testing::HasSubstr;

// What must survive a resume bit for bit.
struct Snapshot {
  std::string params;
  std::vector<std::string> slots;
  std::int64_t optimizer_steps = 0;
};

std::string bytes_of(const Tensor& t) {
  return std::string(static_cast<const char*>(t.raw_data()), t.size_bytes());
}

Snapshot snapshot(Trainer& t) {
  Snapshot s;
  s.params = bytes_of(t.model().flat_params());
  for (const std::string& name : t.optimizer().slot_names()) {
    s.slots.push_back(bytes_of(t.optimizer().slot(name)));
  }
  s.optimizer_steps = t.optimizer().step_count();
  return s;
}

void expect_bitwise_equal(const Snapshot& a, const Snapshot& b, const std::string& what) {
  EXPECT_TRUE(a.params == b.params) << what << ": parameters differ";
  ASSERT_EQ(a.slots.size(), b.slots.size()) << what;
  for (std::size_t i = 0; i < a.slots.size(); ++i) {
    EXPECT_TRUE(a.slots[i] == b.slots[i]) << what << ": optimizer slot " << i << " differs";
  }
  EXPECT_EQ(a.optimizer_steps, b.optimizer_steps) << what;
}

class CheckpointResume : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = (dir_ / "data.h5").string();
    test::write_quadrants_dataset(data_, 320, 40, /*side=*/28, /*num_classes=*/10);
  }

  // A reference model on 28x28 images, 40 steps at batch 32 over 10 steps per epoch, so resuming
  // at step 20 lands on an epoch boundary and 25 inside an epoch.
  TrainConfig config(const std::string& model, const std::string& checkpoint_dir) const {
    TrainConfig c;
    c.data = data_;
    c.model = model;
    if (model == "tiny") {  // where the model does not matter, a cheap one
      c.model = "custom";
      c.layers = {{"flatten"}, {"linear", 784, 16}, {"relu"}, {"linear", 16, 10}};
    }
    c.dropout = model == "cnn" ? 0.3 : 0.0;
    c.batch_size = 32;
    c.epochs = 4;
    c.steps = 40;
    c.optimizer = "adamw";
    c.lr = 1e-3;
    c.lr_schedule = "cosine";
    c.warmup_steps = 5;
    c.augment = "flip";
    c.seed = 11;
    c.threads = 1;
    c.quiet = true;
    c.eval = false;
    c.checkpoint_dir = checkpoint_dir;
    return c;
  }

  Snapshot train(const TrainConfig& c, TrainResult* result = nullptr) const {
    Trainer t(c, ctx_, *world_);
    const TrainResult r = t.run();
    if (result != nullptr) *result = r;
    return snapshot(t);
  }

  test::TempDir dir_;
  std::string data_;
  const Context ctx_ = Context::create(Device::cpu(), 1);
  std::unique_ptr<comm::Communicator> world_ = comm::make_communicator("local");
};

TEST_F(CheckpointResume, StopAndResumeIsBitwiseIdentical) {
  for (const std::string model : {"cnn", "mlp"}) {
    const Snapshot straight = train(config(model, (dir_ / (model + "-straight")).string()));
    // mlp stops on an epoch boundary (10 steps per epoch), cnn inside an epoch.
    for (const std::int64_t stop_at : {model == "mlp" ? 20 : 25}) {
      const std::string ckpt = (dir_ / (model + "-" + std::to_string(stop_at))).string();
      // The first run writes a checkpoint at `stop_at` (same configuration, so the same 40-step
      // schedule); then everything after it is removed, as if the run had died right there.
      TrainConfig first = config(model, ckpt);
      first.checkpoint_every = stop_at;
      train(first);
      std::filesystem::remove(std::filesystem::path(ckpt) / "step-40.h5");
      {
        std::ofstream latest(std::filesystem::path(ckpt) / "latest");
        latest << "step-" << stop_at << ".h5\n";
      }
      TrainConfig second = config(model, ckpt);
      second.resume = "auto";
      TrainResult r;
      const Snapshot resumed = train(second, &r);
      EXPECT_EQ(r.first_step, stop_at);
      EXPECT_EQ(r.steps, 40);
      expect_bitwise_equal(straight, resumed, model + " resumed at " + std::to_string(stop_at));
    }
  }
}

// The loader's hook runs on its prefetch thread before each batch: there it plays the scheduler
// sending SIGTERM in the middle of training.
void send_stop_at_step_12(std::int64_t epoch, std::int64_t step) {
  if (epoch * 10 + step == 12) request_stop(SIGTERM);
}

TEST_F(CheckpointResume, StopSignalWritesACheckpointAndResumeContinuesBitwise) {
  const Snapshot straight = train(config("tiny", (dir_ / "straight").string()));
  const std::string ckpt = (dir_ / "signal").string();
  const test::AllowWarnings stopping_warns;
  TrainResult stopped;
  io::test_hooks::set_loader_fault_hook(send_stop_at_step_12);
  train(config("tiny", ckpt), &stopped);
  io::test_hooks::set_loader_fault_hook(nullptr);
  clear_stop_request();
  EXPECT_EQ(stopped.stop_signal, SIGTERM);
  // The loader prefetches two batches ahead and the trainer takes the next step's batch before
  // computing (Note [Upload one step ahead]), so the stop lands a few steps before the batch whose
  // loading asked for it.
  EXPECT_GE(stopped.steps, 9);
  EXPECT_LT(stopped.steps, 40);
  EXPECT_THAT(stopped.last_checkpoint, HasSubstr(io::checkpoint_file_name(stopped.steps)));

  TrainConfig again = config("tiny", ckpt);
  again.resume = "auto";
  TrainResult r;
  const Snapshot resumed = train(again, &r);
  EXPECT_EQ(r.first_step, stopped.steps);
  EXPECT_EQ(r.stop_signal, 0);
  expect_bitwise_equal(straight, resumed, "resumed after SIGTERM");
}

// Crash points: the process dies inside the checkpoint write of step 20 (after the .tmp is
// written, after its rename, after `latest` is updated); `--resume auto` must still reproduce the
// uninterrupted run.
void crash_at_step_20(io::test_hooks::CheckpointPhase phase, const std::string& path) {
  const char* wanted = std::getenv("DPT_TEST_CRASH_PHASE");
  if (wanted != nullptr && std::atoi(wanted) == static_cast<int>(phase) &&
      path.find("step-20.h5") != std::string::npos) {
    std::_Exit(42);
  }
}

TEST_F(CheckpointResume, CrashDuringAWriteLeavesAResumableDirectory) {
  // "fast" (fork without exec): the child continues in this test's state (its temporary
  // directory); training here runs on one thread and has joined its loader thread before.
  GTEST_FLAG_SET(death_test_style, "fast");
  const Snapshot straight = train(config("tiny", (dir_ / "straight").string()));
  using Phase = io::test_hooks::CheckpointPhase;
  for (const Phase phase : {Phase::kTmpWritten, Phase::kRenamed, Phase::kLatestUpdated}) {
    const int index = static_cast<int>(phase);
    const std::string ckpt = (dir_ / ("crash-" + std::to_string(index))).string();
    TrainConfig c = config("tiny", ckpt);
    c.checkpoint_every = 10;
    ::setenv("DPT_TEST_CRASH_PHASE", std::to_string(index).c_str(), 1);
    EXPECT_EXIT(
        {
          io::test_hooks::set_checkpoint_crash_hook(crash_at_step_20);
          train(c);
        },
        ::testing::ExitedWithCode(42), "")
        << "phase " << index;
    ::unsetenv("DPT_TEST_CRASH_PHASE");

    // `latest` names a complete checkpoint: step 10 before the rename, step 20 after the update.
    const io::CheckpointDir dir(ckpt);
    const auto latest = dir.latest();
    ASSERT_TRUE(latest.has_value()) << "phase " << index;
    EXPECT_EQ(latest->step, phase == Phase::kLatestUpdated ? 20 : 10) << "phase " << index;
    EXPECT_NO_THROW(io::read_checkpoint_file(latest->path)) << "phase " << index;
    EXPECT_EQ(std::filesystem::exists(std::filesystem::path(ckpt) / "step-20.h5.tmp"),
              phase == Phase::kTmpWritten)
        << "phase " << index;

    c.resume = "auto";
    const Snapshot resumed = train(c);
    expect_bitwise_equal(straight, resumed, "crash phase " + std::to_string(index));
    EXPECT_FALSE(std::filesystem::exists(std::filesystem::path(ckpt) / "step-20.h5.tmp"))
        << "the stale .tmp is cleaned";
  }
}

TEST_F(CheckpointResume, KeepLastAndFinalCheckpoint) {
  const std::string ckpt = (dir_ / "keep").string();
  TrainConfig c = config("tiny", ckpt);
  c.steps = 23;
  c.checkpoint_every = 5;
  c.keep_last = 2;
  TrainResult r;
  train(c, &r);
  const io::CheckpointDir dir(ckpt);
  std::vector<std::int64_t> steps;
  for (const auto& ref : dir.list()) steps.push_back(ref.step);
  EXPECT_EQ(steps, (std::vector<std::int64_t>{23, 20}));  // the final one, and the newest before
  EXPECT_EQ(dir.latest()->step, 23);
  const io::CheckpointState state = io::read_checkpoint_file(dir.latest()->path);
  EXPECT_EQ(state.step, 23);
  EXPECT_EQ(state.epoch, 2);
  EXPECT_EQ(state.samples_seen, 23 * 32);
  EXPECT_EQ(state.global_batch, 32);
  EXPECT_EQ(state.optimizer_kind, "adamw");
  EXPECT_EQ(state.optimizer_steps, 23);
  EXPECT_THAT(state.config, HasSubstr("lr-schedule = \"cosine\""));
  EXPECT_THAT(state.model_layers, HasSubstr("\"type\":\"linear\""));
}

TEST_F(CheckpointResume, ResumeThatDoesNotFitFailsNamingTheEntry) {
  const std::string ckpt = (dir_ / "fit").string();
  TrainConfig c = config("tiny", ckpt);
  c.steps = 3;
  train(c);
  const std::string path = (std::filesystem::path(ckpt) / "step-3.h5").string();

  auto expect_refused = [&](TrainConfig bad, const std::string& message) {
    bad.resume = path;
    bad.checkpoint_dir.clear();
    try {
      Trainer t(bad, ctx_, *world_);
      ADD_FAILURE() << "resume accepted, expected: " << message;
    } catch (const Error& e) {
      EXPECT_THAT(e.what(), HasSubstr(path));
      EXPECT_THAT(e.what(), HasSubstr(message));
    }
  };
  TrainConfig other_batch = config("tiny", ckpt);
  other_batch.batch_size = 64;
  expect_refused(other_batch, "global_batch");
  TrainConfig other_seed = config("tiny", ckpt);
  other_seed.seed = 12;
  expect_refused(other_seed, "seed");
  TrainConfig other_optimizer = config("tiny", ckpt);
  other_optimizer.optimizer = "sgd";
  other_optimizer.momentum = 0.9;
  expect_refused(other_optimizer, "expected \"sgd\"");
  TrainConfig other_model = config("cnn", ckpt);
  other_model.dropout = 0.0;
  expect_refused(other_model, "/model/layers.0.weight is missing");
  TrainConfig other_width = config("custom", ckpt);
  other_width.layers = {{"flatten"}, {"linear", 784, 8}, {"relu"}, {"linear", 8, 10}};
  expect_refused(other_width, "/model/layers.1.weight: expected shape [8, 784], found [16, 784]");

  TrainConfig missing = config("tiny", ckpt);
  missing.resume = (dir_ / "nowhere.h5").string();
  EXPECT_THROW(Trainer(missing, ctx_, *world_), Error);
}

// A checkpoint whose last slot does not fit changes nothing: not the parameters that came first,
// not the slots, not the step count.
TEST_F(CheckpointResume, RestoreIsAllOrNothing) {
  TrainConfig c = config("tiny", (dir_ / "all-or-nothing").string());
  c.steps = 3;
  Trainer donor(c, ctx_, *world_);
  donor.run();
  io::CheckpointState state = capture_checkpoint(c, layers_of(c), donor.model(), donor.optimizer(),
                                                 1e-3, TrainPosition{3, 0}, 1);
  state.slots.back().value = Tensor::zeros({7});  // the last slot has the wrong shape

  TrainConfig fresh = config("tiny", "");
  Trainer target(fresh, ctx_, *world_);
  const Snapshot before = snapshot(target);
  try {
    restore_checkpoint(state, "bad.h5", target.model(), &target.optimizer());
    ADD_FAILURE() << "a slot of the wrong shape was accepted";
  } catch (const Error& e) {
    EXPECT_THAT(
        e.what(),
        HasSubstr("bad.h5: /optimizer/layers.3.bias/exp_avg_sq: expected shape [10], found [7]"));
  }
  expect_bitwise_equal(before, snapshot(target), "after a refused restore");

  state.slots.back().value = Tensor::zeros({10});
  restore_checkpoint(state, "good.h5", target.model(), &target.optimizer());
  EXPECT_EQ(target.optimizer().step_count(), 3);
  EXPECT_TRUE(bytes_of(target.model().flat_params()) == bytes_of(donor.model().flat_params()));
}

TEST_F(CheckpointResume, UnwritableCheckpointDirectoryFailsBeforeTraining) {
  const std::string file = (dir_ / "a-file").string();
  std::ofstream(file) << "not a directory\n";
  TrainConfig c = config("tiny", file + "/checkpoints");
  try {
    Trainer t(c, ctx_, *world_);
    ADD_FAILURE() << "a checkpoint directory under a file was accepted";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr(file + "/checkpoints"));
  }
}

}  // namespace
}  // namespace dpt::nn
