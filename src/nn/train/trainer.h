// SPDX-License-Identifier: MIT
// The training loop: data -> forward -> loss -> backward (micro-batches accumulate) -> one scale
// by 1/global batch -> optional clipping -> optimizer step, with metrics, progress and evaluation.
#pragma once

#include <functional>
#include <memory>
#include <optional>

#include "comm/communicator.h"
#include "nn/models.h"
#include "nn/optim/optimizer.h"
#include "nn/optim/schedule.h"
#include "nn/parallel/data_parallel.h"
#include "nn/sequential.h"
#include "nn/train/checkpoint.h"
#include "nn/train/checkpoint_writer.h"
#include "nn/train/config.h"
#include "nn/train/evaluate.h"
#include "nn/train/loss_scaler.h"
#include "nn/train/nonfinite.h"
#include "nn/train/param_check.h"
#include "nn/train/step_loss.h"
#include "runtime/batch_uploader.h"
#include "runtime/device_timer.h"
#include "runtime/host_snapshot.h"
#include "runtime/io/checkpoint_dir.h"
#include "runtime/io/dataset.h"
#include "runtime/io/loader.h"

namespace dpt::nn {

// Mean milliseconds per step of each phase.
struct StepBreakdown {
  double forward_ms = 0.0;
  double backward_ms = 0.0;
  double comm_exposed_ms = 0.0;  // compute waiting for gradient all-reduces after backward
  double comm_total_ms = 0.0;    // all-reduces executing (communication thread, or NCCL stream)
  double optimizer_ms = 0.0;
  double data_wait_ms = 0.0;
};

struct TrainResult {
  std::int64_t first_step = 0;   // > 0 when resumed from a checkpoint
  std::int64_t steps = 0;        // optimizer steps done, counting those before a resume
  double first_loss = 0.0;
  double last_loss = 0.0;
  // Training throughput: samples of the timed steps / their wall time. Leaves out the first 5
  // steps (warm-up) and everything between steps (evaluation, checkpoints).
  double samples_per_sec = 0.0;
  std::int64_t timed_steps = 0;     // steps samples_per_sec is measured over
  double train_seconds = 0.0;       // wall time of those steps
  double eval_seconds = 0.0;        // evaluation, in all
  double checkpoint_seconds = 0.0;  // checkpoint writes, in all (every rank waits for rank 0's)
  // Of checkpoint_seconds, the time training was held at checkpoint steps: the whole write, or
  // with --async-checkpoint waiting for the previous write and taking the snapshot; the rest is
  // waiting for the last write at the end. And rank 0's writes themselves (on the writer thread
  // with --async-checkpoint, overlapping training), and how many checkpoints were taken.
  double checkpoint_stall_seconds = 0.0;
  double checkpoint_write_seconds = 0.0;
  std::int64_t checkpoints = 0;
  double wall_seconds = 0.0;        // the whole run() from the first step to the summary
  StepBreakdown breakdown;
  std::optional<EvalResult> last_eval;
  int stop_signal = 0;           // SIGTERM/SIGUSR1 that ended training early; 0: it ran to the end
  std::string last_checkpoint;   // path of the last checkpoint written ("" when none)
  std::int64_t nonfinite_skipped = 0;  // steps skipped for NaN/Inf gradients (--nonfinite skip)
};

class Trainer {
 public:
  // Every rank of `comm` constructs a Trainer with the same config; start-up checks that they
  // agree (config, model, data, build), prepares the checkpoint directory, resumes when asked and
  // makes parameters and optimizer state equal to rank 0's.
  Trainer(TrainConfig config, const Context& ctx, comm::Communicator& comm);
  ~Trainer();
  TrainResult run();
  // One step at a time, for `train verify`: the next step of the run on its next global batch
  // (this rank's share), with the all-reduce and the optimizer; returns the step's mean loss over
  // all ranks, or nullopt when the run has no steps left. Not to be mixed with run().
  std::optional<double> step();
  // Test aid for `train verify`: this rank scales the first loss gradient of each step by 1.5,
  // so that its gradient is wrong and the reduced gradient differs from one rank's.
  void corrupt_gradients_for_testing() { corrupt_gradients_ = true; }
  EvalResult evaluate(const io::DatasetSplit& split);
  Sequential& model() { return model_; }
  Optimizer& optimizer() { return *optimizer_; }
  // --precision fp16's loss scale (null otherwise).
  const LossScaler* loss_scaler() const { return scaler_ ? &*scaler_ : nullptr; }
  DataParallel& data_parallel() { return *ddp_; }

 private:
  void log_devices();
  // One optimizer step on `batch` (already on the device): forward and backward in micro-batches,
  // the gradient all-reduce, clipping and the optimizer; returns the loss sum of this rank's
  // samples, read once at the end (Note [One loss read per step]). Adds the step's phase times,
  // measured on the device (DeviceTimer), to `times`.
  LossTotals train_step(io::Batch& batch, std::int64_t step, StepBreakdown& times);
  // The step's loss over all ranks (every rank gets the same) and any stop signal one rank got.
  struct StepOutcome {
    double loss_sum = 0.0;
    int signal = 0;
  };
  StepOutcome agree_on_step(const LossTotals& loss, std::int64_t step);
  // Note [Step check]: every rank is about to run step `step` (ended = false) or has ended
  // training after `step` steps (ended = true); throws naming each rank's position otherwise.
  void check_same_step(std::int64_t step, bool ended);
  // Stops every rank with one error when their configs, models, data or builds differ.
  void check_ranks_agree();
  // Runs `work` on rank 0; if it throws, every rank throws the same error (so that all exit
  // non-zero with rank 0's message, and none hangs in a later collective).
  void on_rank0_agreed(const std::function<void()>& work);
  // Rank 0 loads the checkpoint --resume names into model and optimizer; all ranks then receive
  // it. Returns the position to continue from.
  TrainPosition resume();
  // Rank 0 writes a checkpoint of the state after `position.step` steps; all ranks wait for it.
  // With --async-checkpoint rank 0 waits for the previous write, takes the snapshot and hands it
  // to the writer thread; all ranks wait for that only.
  std::string save_checkpoint(const TrainPosition& position);
  // --async-checkpoint: rank 0 waits for the write in flight; when it failed, every rank throws.
  void finish_checkpoint_write();
  void broadcast_optimizer_state();
  // Refuses (unless --allow-inexact-resume) a resume on another world size that cannot continue
  // bit for bit: Note [Elastic resume].
  void check_elastic_resume(const io::CheckpointState& state, const std::string& path);
  bool prints() const { return comm_.rank() == 0 || config_.log_all_ranks; }

  TrainConfig config_;
  const Context& ctx_;
  comm::Communicator& comm_;
  BatchUploader uploader_;  // loader batches -> the training device
  std::int64_t micro_batch_ = 0;
  std::int64_t targets_per_sample_ = 1;  // labels per sample: 1, or T tokens of a window
  std::int64_t steps_per_epoch_ = 0;
  io::DatasetSplit train_data_;
  std::optional<io::DatasetSplit> test_data_;
  Sequential model_;
  std::unique_ptr<Optimizer> optimizer_;
  LrSchedule schedule_;
  std::unique_ptr<DataParallel> ddp_;
  std::vector<LayerSpec> layers_;
  std::optional<io::CheckpointDir> checkpoints_;
  TrainPosition start_;  // where run() begins (after a resume)
  io::LoaderOptions loader_options() const;
  std::unique_ptr<io::Loader> step_loader_;  // step()'s data
  std::int64_t stepped_ = 0;                 // steps step() has run
  bool corrupt_gradients_ = false;
  std::optional<Timeline> timeline_;  // with --timeline
  StepLoss step_loss_;                // the step's per-sample losses, on the device
  // What the step's phases took where they ran (events on a GPU), read once per step.
  DeviceTimer forward_timer_;
  DeviceTimer backward_timer_;
  DeviceTimer exposed_comm_timer_;
  DeviceTimer optimizer_timer_;
  std::unique_ptr<NonfiniteGuard> nonfinite_;  // --nonfinite
  std::unique_ptr<ParamCheck> param_check_;    // --check-params-every (null when 0)
  bool step_skipped_ = false;                  // the last train_step skipped its optimizer step
  std::optional<LossScaler> scaler_;           // --precision fp16 (Note [Loss scaling])
  double step_loss_scale_ = 1.0;               // the scale the last train_step used
  // Rank 0's checkpoint snapshots (created by the first), and the last snapshot's fence: the
  // optimizer step orders the compute stream after its copies (Note [Snapshots on a copy stream]).
  std::unique_ptr<HostSnapshotter> snapshotter_;
  SnapshotFence snapshot_fence_;
  // --async-checkpoint: rank 0's writer thread (null on other ranks and without the flag). Last,
  // so that it is destroyed (joining a write in flight) before anything else goes.
  std::unique_ptr<CheckpointWriter> writer_;
  // Rank 0, the last save_checkpoint: waiting for the previous write, taking the snapshot (or
  // the whole synchronous write), in ms; and the synchronous writes' time, in all.
  double checkpoint_wait_ms_ = 0.0;
  double checkpoint_snapshot_ms_ = 0.0;
  double sync_write_seconds_ = 0.0;
};

}  // namespace dpt::nn
