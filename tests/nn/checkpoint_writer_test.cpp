// SPDX-License-Identifier: MIT
// Asynchronous checkpoints: the writer thread writes what a synchronous save writes; a snapshot
// does not change while training goes on; at most one write is in flight; a failed write is thrown
// by the next look and leaves `latest` on the previous checkpoint; the destructor waits for the
// write in flight. Through the trainer (--async-checkpoint): the same checkpoints as a synchronous
// run, a failed background write ends the run, and a stop signal during a write ends with complete
// checkpoints that a resume continues bit for bit.
#include "nn/train/checkpoint_writer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "comm/communicator.h"
#include "nn/train/checkpoint.h"
#include "nn/train/trainer.h"
#include "runtime/host_snapshot.h"
#include "runtime/io/checkpoint_dir.h"
#include "runtime/io/checkpoint_file.h"
#include "runtime/io/loader_testing.h"
#include "runtime/stop_signals.h"
#include "testing/test_util.h"

namespace dpt::nn {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

std::string bytes_of(const Tensor& t) {
  return std::string(static_cast<const char*>(t.raw_data()), t.size_bytes());
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// By name: a file read back lists them in HDF5's (alphabetical) order.
void expect_same_tensors(std::vector<io::NamedTensor> a, std::vector<io::NamedTensor> b,
                         const std::string& what) {
  const auto by_name = [](const io::NamedTensor& x, const io::NamedTensor& y) {
    return x.name < y.name;
  };
  std::sort(a.begin(), a.end(), by_name);
  std::sort(b.begin(), b.end(), by_name);
  ASSERT_EQ(a.size(), b.size()) << what;
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].name, b[i].name) << what;
    EXPECT_EQ(a[i].value.shape(), b[i].value.shape()) << what << " " << a[i].name;
    EXPECT_TRUE(bytes_of(a[i].value) == bytes_of(b[i].value)) << what << " " << a[i].name;
  }
}

// Every attribute and every tensor bit for bit; `config` too unless told otherwise (a run with
// --async-checkpoint stores that setting in its config).
void expect_same_state(const io::CheckpointState& a, const io::CheckpointState& b,
                       const std::string& what, bool compare_config = true) {
  EXPECT_EQ(a.step, b.step) << what;
  EXPECT_EQ(a.epoch, b.epoch) << what;
  EXPECT_EQ(a.samples_seen, b.samples_seen) << what;
  EXPECT_EQ(a.world_size, b.world_size) << what;
  EXPECT_EQ(a.global_batch, b.global_batch) << what;
  EXPECT_EQ(a.seed, b.seed) << what;
  if (compare_config) {
    EXPECT_EQ(a.config, b.config) << what;
  }
  EXPECT_EQ(a.model_layers, b.model_layers) << what;
  EXPECT_EQ(a.optimizer_kind, b.optimizer_kind) << what;
  EXPECT_EQ(a.optimizer_steps, b.optimizer_steps) << what;
  EXPECT_EQ(a.lr, b.lr) << what;
  EXPECT_EQ(a.lr_schedule, b.lr_schedule) << what;
  auto hyper_a = a.hyper, hyper_b = b.hyper;
  std::sort(hyper_a.begin(), hyper_a.end());
  std::sort(hyper_b.begin(), hyper_b.end());
  EXPECT_EQ(hyper_a, hyper_b) << what;
  EXPECT_EQ(a.slot_names, b.slot_names) << what;
  expect_same_tensors(a.model, b.model, what + " /model");
  expect_same_tensors(a.slots, b.slots, what + " /optimizer");
}

// Runs `f` and expects an IoError whose message holds every part.
void expect_io_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kIo) << e.what();
    for (const std::string& part : parts) EXPECT_THAT(e.message(), HasSubstr(part));
  }
}

// ---- hooks (plain function pointers: their state is global) -------------------------------------

// The writer hook records each write's start and holds the write of `held` until opened.
struct WriteGate {
  std::mutex mutex;
  std::condition_variable changed;
  std::int64_t held = -1;
  bool open = false;
  std::vector<std::int64_t> started;

  void reset(std::int64_t step_to_hold) {
    const std::lock_guard lock(mutex);
    held = step_to_hold;
    open = false;
    started.clear();
  }
  void release() {
    {
      const std::lock_guard lock(mutex);
      open = true;
    }
    changed.notify_all();
  }
  // True once the write of `step` has started; false if it has not within `limit`.
  bool wait_started(std::int64_t step, std::chrono::milliseconds limit) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, limit, [&] {
      return std::find(started.begin(), started.end(), step) != started.end();
    });
  }
  std::vector<std::int64_t> starts() {
    const std::lock_guard lock(mutex);
    return started;
  }
};
WriteGate g_gate;

void gate_hook(std::int64_t step, test_hooks::WritePhase phase) {
  if (phase != test_hooks::WritePhase::kStarting) return;
  std::unique_lock lock(g_gate.mutex);
  g_gate.started.push_back(step);
  g_gate.changed.notify_all();
  g_gate.changed.wait(lock, [&] { return step != g_gate.held || g_gate.open; });
}

// Slows every write down, so that training overlaps it.
void slow_hook(std::int64_t, test_hooks::WritePhase phase) {
  if (phase == test_hooks::WritePhase::kStarting) std::this_thread::sleep_for(30ms);
}

// The checkpoint write of step g_fail_step fails after its .tmp is written (as a failing rename or
// a full disk would): CheckpointDir::save removes the .tmp and leaves `latest` alone.
std::int64_t g_fail_step = -1;
void fail_hook(io::test_hooks::CheckpointPhase phase, const std::string& path) {
  if (phase == io::test_hooks::CheckpointPhase::kTmpWritten &&
      path.ends_with(io::checkpoint_file_name(g_fail_step) + ".tmp")) {
    throw Error(ErrorKind::kIo, "injected: No space left on device");
  }
}

// A stop signal while the write of step 10 is in flight (the scheduler's SIGTERM).
void stop_during_write_of_10(std::int64_t step, test_hooks::WritePhase phase) {
  if (step != 10 || phase != test_hooks::WritePhase::kStarting) return;
  request_stop(SIGTERM);
  std::this_thread::sleep_for(50ms);
}

// The writer has recorded the outcome of the write of step g_fail_step; the loader's prefetch
// thread waits for that before preparing the batch of step 12, so training cannot reach the next
// checkpoint (step 15) before the failure is there to be seen.
std::mutex g_recorded_mutex;
std::condition_variable g_recorded_changed;
bool g_recorded = false;
void note_recorded(std::int64_t step, test_hooks::WritePhase phase) {
  if (step != g_fail_step || phase != test_hooks::WritePhase::kFinished) return;
  {
    const std::lock_guard lock(g_recorded_mutex);
    g_recorded = true;
  }
  g_recorded_changed.notify_all();
}
void wait_for_recorded_failure_at_step_12(std::int64_t epoch, std::int64_t step) {
  if (epoch * 10 + step != 12) return;
  std::unique_lock lock(g_recorded_mutex);
  g_recorded_changed.wait_for(lock, 60s, [] { return g_recorded; });
}

// A stand-in for the GPU's copy stream (runtime/cuda/host_snapshot_cuda.cpp) that copies at the
// last moment the fence allows: at the first of wait_on_host() (the writer, about to read) and
// make_compute_wait() (the trainer, about to overwrite the sources). Until then the copies hold
// NaN. So a trainer that updates parameters before ordering the compute side, or a writer that
// reads before its host wait, writes a checkpoint that differs from the synchronous run's (or is
// refused for its NaN).
struct LazyCopyCounts {
  std::mutex mutex;
  int snapshots = 0;
  int compute_waits = 0;
  int host_waits_off_the_training_thread = 0;
  std::thread::id training_thread;
};
LazyCopyCounts g_lazy;

class LazyCopies final : public SnapshotFence::Impl {
 public:
  LazyCopies(std::vector<Tensor> sources, std::vector<Tensor> copies)
      : sources_(std::move(sources)), copies_(std::move(copies)) {}
  void wait_on_host() override {
    copy_once();
    const std::lock_guard lock(g_lazy.mutex);
    if (std::this_thread::get_id() != g_lazy.training_thread) {
      ++g_lazy.host_waits_off_the_training_thread;
    }
  }
  void make_compute_wait() override {
    copy_once();
    const std::lock_guard lock(g_lazy.mutex);
    ++g_lazy.compute_waits;
  }

 private:
  void copy_once() {
    const std::lock_guard lock(mutex_);
    if (copied_) return;
    for (std::size_t i = 0; i < sources_.size(); ++i) copies_[i].copy_from(sources_[i]);
    copied_ = true;
  }
  std::mutex mutex_;
  bool copied_ = false;
  std::vector<Tensor> sources_, copies_;
};

class LazySnapshotter final : public HostSnapshotter::Impl {
 public:
  HostSnapshot take(const std::vector<Tensor>& sources) override {
    HostSnapshot s;
    for (const Tensor& t : sources) {
      s.copies.push_back(Tensor::full(t.shape(), std::numeric_limits<float>::quiet_NaN()));
    }
    s.fence = SnapshotFence(std::make_shared<LazyCopies>(sources, s.copies));
    const std::lock_guard lock(g_lazy.mutex);
    ++g_lazy.snapshots;
    return s;
  }
};
std::unique_ptr<HostSnapshotter::Impl> make_lazy_snapshotter() {
  return std::make_unique<LazySnapshotter>();
}

class AsyncCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = (dir_ / "data.h5").string();
    test::write_quadrants_dataset(data_, 320, 40, /*side=*/28, /*num_classes=*/10);
  }
  void TearDown() override {
    dpt::test_hooks::set_cpu_snapshot_impl(nullptr);
    test_hooks::set_checkpoint_write_hook(nullptr);
    io::test_hooks::set_checkpoint_crash_hook(nullptr);
    io::test_hooks::set_loader_fault_hook(nullptr);
    clear_stop_request();
  }

  // A small model, 10 steps per epoch of 32 samples, AdamW (two slots per parameter).
  TrainConfig config(const std::string& checkpoint_dir, bool async) const {
    TrainConfig c;
    c.data = data_;
    c.model = "custom";
    c.layers = {{"flatten"}, {"linear", 784, 16}, {"relu"}, {"linear", 16, 10}};
    c.batch_size = 32;
    c.epochs = 4;
    c.steps = 40;
    c.optimizer = "adamw";
    c.lr = 1e-3;
    c.lr_schedule = "cosine";
    c.seed = 5;
    c.threads = 1;
    c.quiet = true;
    c.eval = false;
    c.checkpoint_dir = checkpoint_dir;
    c.async_checkpoint = async;
    c.keep_last = 0;
    return c;
  }

  // The state of `t` as the trainer would checkpoint it after `step` steps.
  io::CheckpointState capture(Trainer& t, const TrainConfig& c, std::int64_t step) const {
    return capture_checkpoint(c, layers_of(c), t.model(), t.optimizer(), c.lr,
                              TrainPosition{step, step / 10}, 1);
  }

  io::CheckpointDir prepared(const std::string& name) const {
    io::CheckpointDir d((dir_ / name).string());
    d.prepare();
    return d;
  }

  test::TempDir dir_;
  std::string data_;
  const Context ctx_ = Context::create(Device::cpu(), 1);
  std::unique_ptr<comm::Communicator> world_ = comm::make_communicator("local");
};

// ---- the writer ---------------------------------------------------------------------------------

TEST_F(AsyncCheckpoint, WriterWritesWhatASynchronousSaveWrites) {
  const TrainConfig c = config("", false);
  Trainer t(c, ctx_, *world_);
  const io::CheckpointDir sync = prepared("sync"), async = prepared("async");
  sync.save(capture(t, c, 3), 0);
  {
    CheckpointWriter writer(async, 0);
    EXPECT_EQ(writer.submit(capture(t, c, 3)), (dir_ / "async" / "step-3.h5").string());
    writer.wait();
    EXPECT_FALSE(writer.in_flight());
    EXPECT_EQ(writer.stats().written, 1);
    EXPECT_GT(writer.stats().write_seconds, 0.0);
    EXPECT_EQ(writer.stats().last_path, (dir_ / "async" / "step-3.h5").string());
  }
  EXPECT_EQ(read_text(dir_ / "async" / "latest"), "step-3.h5\n");
  expect_same_state(io::read_checkpoint_file((dir_ / "async" / "step-3.h5").string()),
                    io::read_checkpoint_file((dir_ / "sync" / "step-3.h5").string()),
                    "async against sync");
  EXPECT_EQ(fs::file_size(dir_ / "async" / "step-3.h5"),
            fs::file_size(dir_ / "sync" / "step-3.h5"));
}

// Write a step, keep training while the write is held, compare: the file holds the state of the
// step it was taken at, not the parameters and slots training has moved on to.
TEST_F(AsyncCheckpoint, SnapshotIsUnaffectedByTrainingDuringTheWrite) {
  const TrainConfig c = config("", false);
  Trainer t(c, ctx_, *world_);
  const io::CheckpointState expected = capture(t, c, 0);
  const std::string params_before = bytes_of(t.model().flat_params());

  g_gate.reset(/*held=*/0);
  test_hooks::set_checkpoint_write_hook(gate_hook);
  CheckpointWriter writer(prepared("ckpt"), 0);
  writer.submit(capture(t, c, 0));
  ASSERT_TRUE(g_gate.wait_started(0, 60s));
  t.run();  // 40 steps: every parameter and slot changes while the write waits to begin
  ASSERT_NE(bytes_of(t.model().flat_params()), params_before);
  EXPECT_TRUE(writer.in_flight());
  g_gate.release();
  writer.wait();
  expect_same_state(io::read_checkpoint_file((dir_ / "ckpt" / "step-0.h5").string()), expected,
                    "snapshot of step 0");
}

TEST_F(AsyncCheckpoint, AtMostOneWriteInFlight) {
  const TrainConfig c = config("", false);
  Trainer t(c, ctx_, *world_);
  g_gate.reset(/*held=*/1);
  test_hooks::set_checkpoint_write_hook(gate_hook);
  CheckpointWriter writer(prepared("ckpt"), 0);
  writer.submit(capture(t, c, 1));
  ASSERT_TRUE(g_gate.wait_started(1, 60s));
  EXPECT_TRUE(writer.in_flight());

  std::atomic<bool> second_returned{false};
  std::thread second([&] {
    writer.submit(capture(t, c, 2));
    second_returned = true;
  });
  // Were two writes allowed at once, the second would begin now, while the first is held.
  EXPECT_FALSE(g_gate.wait_started(2, 300ms)) << "the second write began during the first";
  EXPECT_FALSE(second_returned.load()) << "submit returned while a write was in flight";
  EXPECT_FALSE(fs::exists(dir_ / "ckpt" / "step-1.h5"));
  g_gate.release();
  second.join();
  EXPECT_TRUE(second_returned.load());
  writer.wait();
  EXPECT_EQ(g_gate.starts(), (std::vector<std::int64_t>{1, 2}));
  EXPECT_EQ(read_text(dir_ / "ckpt" / "latest"), "step-2.h5\n");
  EXPECT_EQ(writer.stats().written, 2);
}

TEST_F(AsyncCheckpoint, FailedWriteIsThrownByTheNextLookAndKeepsLatest) {
  const TrainConfig c = config("", false);
  Trainer t(c, ctx_, *world_);
  const io::CheckpointDir dir = prepared("ckpt");
  CheckpointWriter writer(dir, 0);
  writer.submit(capture(t, c, 1));
  writer.wait();
  const std::string step1 = read_text(dir_ / "ckpt" / "step-1.h5");

  g_fail_step = 2;
  io::test_hooks::set_checkpoint_crash_hook(fail_hook);
  writer.submit(capture(t, c, 2));  // returns at once: the failure comes later
  while (writer.in_flight()) std::this_thread::sleep_for(1ms);
  EXPECT_TRUE(writer.failed());
  const std::string path = (dir_ / "ckpt" / "step-2.h5").string();
  const std::vector<std::string> parts = {"background write of checkpoint " + path + " failed",
                                          "injected: No space left on device",
                                          dir.path() + "/latest are unchanged"};
  expect_io_error([&] { writer.poll(); }, parts);
  EXPECT_THAT(writer.failure(), HasSubstr(path));
  // Still failed: the next checkpoint is refused with the same error, and nothing is written.
  expect_io_error([&] { writer.submit(capture(t, c, 3)); }, parts);
  expect_io_error([&] { writer.wait(); }, parts);

  EXPECT_EQ(read_text(dir_ / "ckpt" / "latest"), "step-1.h5\n");
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  EXPECT_FALSE(fs::exists(dir_ / "ckpt" / "step-3.h5"));
  EXPECT_EQ(read_text(dir_ / "ckpt" / "step-1.h5"), step1);
  EXPECT_EQ(dir.load_newest()->state.step, 1);
}

// The snapshot's NaN/Inf check runs on the writer thread (off the stall): a snapshot holding a
// NaN is a failed background write, and nothing is written.
TEST_F(AsyncCheckpoint, ANonFiniteSnapshotIsRefusedByTheWriter) {
  const TrainConfig c = config("", false);
  Trainer t(c, ctx_, *world_);
  CheckpointWriter writer(prepared("ckpt"), 0);
  writer.submit(capture(t, c, 1));
  writer.wait();
  io::CheckpointState poisoned = capture_checkpoint(c, layers_of(c), t.model(), t.optimizer(), c.lr,
                                                    TrainPosition{2, 0}, 1, {},
                                                    /*check_finite=*/false);
  poisoned.slots.back().value.data<float>()[0] = std::numeric_limits<float>::quiet_NaN();
  writer.submit(std::move(poisoned));
  try {
    writer.wait();
    ADD_FAILURE() << "a snapshot holding a NaN was written";
  } catch (const Error& e) {
    for (const char* part :
         {"background write of checkpoint", "not writing the checkpoint of step 2", "/optimizer/",
          "holds NaN at element 0"}) {
      EXPECT_THAT(e.message(), HasSubstr(part));
    }
  }
  EXPECT_EQ(read_text(dir_ / "ckpt" / "latest"), "step-1.h5\n");
  EXPECT_FALSE(fs::exists(dir_ / "ckpt" / "step-2.h5"));
}

TEST_F(AsyncCheckpoint, DestructorWaitsForTheWriteInFlight) {
  const TrainConfig c = config("", false);
  Trainer t(c, ctx_, *world_);
  test_hooks::set_checkpoint_write_hook(slow_hook);
  {
    CheckpointWriter writer(prepared("ckpt"), 0);
    writer.submit(capture(t, c, 7));
  }
  // Had the destructor not joined, the write would still be sleeping in the hook.
  EXPECT_EQ(read_text(dir_ / "ckpt" / "latest"), "step-7.h5\n");
  EXPECT_EQ(io::read_checkpoint_file((dir_ / "ckpt" / "step-7.h5").string()).step, 7);
}

// ---- through the trainer ------------------------------------------------------------------------

nlohmann::json summary_of(const std::string& metrics) {
  std::ifstream in(metrics);
  nlohmann::json summary;
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.at("event") == "summary") summary = j;
  }
  return summary;
}

TEST_F(AsyncCheckpoint, TrainerWritesTheCheckpointsOfASynchronousRun) {
  TrainResult results[2];
  for (const bool async : {false, true}) {
    TrainConfig c = config((dir_ / (async ? "async" : "sync")).string(), async);
    c.steps = 20;
    c.checkpoint_every = 5;
    c.metrics = (dir_ / (async ? "async.jsonl" : "sync.jsonl")).string();
    test_hooks::set_checkpoint_write_hook(async ? slow_hook : nullptr);  // training overlaps
    Trainer t(c, ctx_, *world_);
    results[async ? 1 : 0] = t.run();
    // run() returns once the last write is complete (the trainer, and its writer, still live).
    EXPECT_EQ(read_text(fs::path(c.checkpoint_dir) / "latest"), "step-20.h5\n") << c.checkpoint_dir;
  }
  for (const int step : {5, 10, 15, 20}) {
    const std::string name = io::checkpoint_file_name(step);
    expect_same_state(io::read_checkpoint_file((dir_ / "async" / name).string()),
                      io::read_checkpoint_file((dir_ / "sync" / name).string()), name,
                      /*compare_config=*/false);
  }
  EXPECT_EQ(read_text(dir_ / "async" / "latest"), "step-20.h5\n");
  const TrainResult& a = results[1];
  EXPECT_EQ(a.last_checkpoint, (dir_ / "async" / "step-20.h5").string());
  for (const TrainResult& r : results) {
    EXPECT_EQ(r.checkpoints, 4);
    EXPECT_GT(r.checkpoint_write_seconds, 0.0);
    EXPECT_LE(r.checkpoint_stall_seconds, r.checkpoint_seconds);
  }
  // Every write slept 30 ms on the writer thread: counted as write time, not as a stall.
  EXPECT_GE(a.checkpoint_write_seconds, 4 * 0.030);
  // One metrics line per checkpoint, with the stall and (in the background) its parts.
  std::vector<std::int64_t> steps;
  std::ifstream lines(dir_ / "async.jsonl");
  for (std::string line; std::getline(lines, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.at("event") != "checkpoint") continue;
    steps.push_back(j.at("step").get<std::int64_t>());
    EXPECT_TRUE(j.at("background").get<bool>());
    EXPECT_LE(j.at("wait_s").get<double>() + j.at("snapshot_s").get<double>(),
              j.at("stall_s").get<double>());
  }
  EXPECT_EQ(steps, (std::vector<std::int64_t>{5, 10, 15, 20}));
  const nlohmann::json summary = summary_of((dir_ / "async.jsonl").string());
  ASSERT_FALSE(summary.is_null());
  EXPECT_EQ(summary.at("checkpoints").get<int>(), 4);
  EXPECT_TRUE(summary.at("async_checkpoint").get<bool>());
  EXPECT_DOUBLE_EQ(summary.at("checkpoint_stall_s").get<double>(), a.checkpoint_stall_seconds);
  EXPECT_DOUBLE_EQ(summary.at("checkpoint_write_s").get<double>(), a.checkpoint_write_seconds);
  EXPECT_DOUBLE_EQ(summary.at("checkpoint_s").get<double>(), a.checkpoint_seconds);
}

// Snapshots whose copies arrive late, as a GPU's on its copy stream: the trainer orders the
// compute side before the next optimizer step, the writer (or a synchronous save) waits before it
// reads, and the checkpoints are those of plain copies.
TEST_F(AsyncCheckpoint, TrainerOrdersTheCopiesOfASnapshotTakenOnACopyStream) {
  for (const char* name : {"plain", "lazy-sync", "lazy-async"}) {
    const std::string mode = name;
    TrainConfig c = config((dir_ / name).string(), mode == "lazy-async");
    c.steps = 20;
    c.checkpoint_every = 5;
    // The writer starts reading only after training has gone on (30 ms: a few steps).
    test_hooks::set_checkpoint_write_hook(mode == "lazy-async" ? slow_hook : nullptr);
    dpt::test_hooks::set_cpu_snapshot_impl(mode == "plain" ? nullptr : make_lazy_snapshotter);
    {
      const std::lock_guard lock(g_lazy.mutex);
      g_lazy.snapshots = g_lazy.compute_waits = g_lazy.host_waits_off_the_training_thread = 0;
      g_lazy.training_thread = std::this_thread::get_id();
    }
    {
      Trainer t(c, ctx_, *world_);
      t.run();
    }
    if (mode == "plain") continue;
    const std::lock_guard lock(g_lazy.mutex);
    EXPECT_EQ(g_lazy.snapshots, 4) << mode;
    EXPECT_EQ(g_lazy.compute_waits, 4) << mode << ": every snapshot's sources are protected once";
    EXPECT_EQ(g_lazy.host_waits_off_the_training_thread, mode == "lazy-async" ? 4 : 0)
        << mode << ": the writer thread waits for the copies";
  }
  for (const int step : {5, 10, 15, 20}) {
    const std::string file = io::checkpoint_file_name(step);
    const io::CheckpointState plain = io::read_checkpoint_file((dir_ / "plain" / file).string());
    for (const char* mode : {"lazy-sync", "lazy-async"}) {
      expect_same_state(io::read_checkpoint_file((dir_ / mode / file).string()), plain,
                        std::string(mode) + " " + file, /*compare_config=*/false);
    }
  }
}

// The failure is reported after the step during which it happened (the flag rides on the step's
// loss all-reduce), not only when the next checkpoint waits for the write.
TEST_F(AsyncCheckpoint, FailedBackgroundWriteEndsTheRunAtTheNextStep) {
  const std::string ckpt = (dir_ / "ckpt").string();
  TrainConfig c = config(ckpt, true);
  c.steps = 20;
  c.checkpoint_every = 5;
  c.metrics = (dir_ / "m.jsonl").string();
  g_fail_step = 10;
  g_recorded = false;
  io::test_hooks::set_checkpoint_crash_hook(fail_hook);
  test_hooks::set_checkpoint_write_hook(note_recorded);
  io::test_hooks::set_loader_fault_hook(wait_for_recorded_failure_at_step_12);
  {
    Trainer t(c, ctx_, *world_);
    expect_io_error([&] { t.run(); },
                    {"background write of checkpoint " + ckpt + "/step-10.h5 failed",
                     "injected: No space left on device"});
  }
  std::int64_t last_step = 0;
  std::ifstream metrics(c.metrics);
  for (std::string line; std::getline(metrics, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.at("event") == "step") last_step = j.at("step").get<std::int64_t>();
  }
  EXPECT_GE(last_step, 10);
  EXPECT_LT(last_step, 15) << "the failure waited for the next checkpoint";
  const io::CheckpointDir dir(ckpt);
  EXPECT_EQ(dir.latest()->step, 5);
  EXPECT_FALSE(fs::exists(fs::path(ckpt) / "step-10.h5"));
  EXPECT_FALSE(fs::exists(fs::path(ckpt) / "step-10.h5.tmp"));
  EXPECT_FALSE(fs::exists(fs::path(ckpt) / "step-15.h5")) << "training went on past the failure";
}

TEST_F(AsyncCheckpoint, StopSignalDuringAWriteEndsWithCompleteCheckpoints) {
  const test::AllowWarnings stopping_warns;
  Trainer reference(config((dir_ / "straight").string(), false), ctx_, *world_);
  reference.run();
  const std::string params = bytes_of(reference.model().flat_params());

  const std::string ckpt = (dir_ / "stop").string();
  TrainConfig c = config(ckpt, true);
  c.checkpoint_every = 10;
  test_hooks::set_checkpoint_write_hook(stop_during_write_of_10);
  TrainResult stopped;
  {
    Trainer t(c, ctx_, *world_);
    stopped = t.run();
  }
  test_hooks::set_checkpoint_write_hook(nullptr);
  clear_stop_request();
  EXPECT_EQ(stopped.stop_signal, SIGTERM);
  EXPECT_GT(stopped.steps, 10);
  EXPECT_LT(stopped.steps, 40);
  // Both writes complete: the one the signal came during, and the stop's own.
  const io::CheckpointDir dir(ckpt);
  EXPECT_EQ(dir.latest()->step, stopped.steps);
  EXPECT_EQ(io::read_checkpoint_file((fs::path(ckpt) / "step-10.h5").string()).step, 10);
  EXPECT_EQ(io::read_checkpoint_file(dir.latest()->path).step, stopped.steps);

  c.resume = "auto";
  Trainer resumed(c, ctx_, *world_);
  const TrainResult r = resumed.run();
  EXPECT_EQ(r.first_step, stopped.steps);
  EXPECT_EQ(r.steps, 40);
  EXPECT_TRUE(bytes_of(resumed.model().flat_params()) == params)
      << "the resumed run differs from the uninterrupted one";
}

}  // namespace
}  // namespace dpt::nn
