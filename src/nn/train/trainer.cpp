// SPDX-License-Identifier: MIT
// The training loop, evaluation and the step-time accounting behind the metrics summary.
#include "nn/train/trainer.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstring>
#include <iomanip>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "kernels/ops.h"
#include "nn/layers/rows.h"
#include "nn/train/agreement.h"
#include "nn/train/batch_on_device.h"
#include "nn/train/metrics.h"
#include "nn/train/model_of_config.h"
#include "nn/train/timeline_writer.h"
#include "runtime/build_info.h"
#include "runtime/exact_sum.h"
#include "runtime/fault.h"
#include "runtime/io/loader.h"
#include "runtime/logging.h"
#include "runtime/stop_signals.h"
#include "runtime/timer.h"

namespace dpt::nn {
namespace {

// Steps left out of samples/s: the first steps create oneDNN primitives and fill the allocator.
constexpr std::int64_t kWarmupSteps = 5;

OptimizerConfig optimizer_config(const TrainConfig& c) {
  OptimizerConfig o;
  o.kind = c.optimizer == "sgd" ? OptimizerKind::kSgd : OptimizerKind::kAdamW;
  o.momentum = c.momentum;
  o.dampening = c.dampening;
  o.nesterov = c.nesterov;
  o.beta1 = c.beta1;
  o.beta2 = c.beta2;
  o.eps = c.eps;
  o.weight_decay = c.resolved_weight_decay();
  return o;
}

// DPT_FAULT's flip: the lowest mantissa bit of the first parameter, the smallest change there is
// (one ulp), so that a test shows that any desynchronisation is caught.
void flip_lowest_bit(Tensor& params) {
  Tensor first = Tensor::view_of(params, 0, {1});
  Tensor host = Tensor::zeros({1}, DType::kF32, Device::cpu());
  host.copy_from(first);
  std::uint32_t bits = 0;
  std::memcpy(&bits, host.data<float>(), sizeof bits);
  bits ^= 1u;
  std::memcpy(host.data<float>(), &bits, sizeof bits);
  first.copy_from(host);
}

// The process's peak resident set in bytes (Linux reports ru_maxrss in KiB).
std::int64_t peak_rss_bytes() {
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  return static_cast<std::int64_t>(usage.ru_maxrss) * 1024;
}

std::string format_duration(double seconds) {
  const auto s = static_cast<long long>(std::max(0.0, seconds));
  std::ostringstream out;
  if (s >= 3600) out << s / 3600 << 'h';
  out << std::setw(s >= 3600 ? 2 : 1) << std::setfill('0') << (s % 3600) / 60 << 'm'
      << std::setw(2) << std::setfill('0') << s % 60 << 's';
  return out.str();
}

}  // namespace

Trainer::Trainer(TrainConfig config, const Context& ctx, comm::Communicator& comm)
    : config_((validate(config), std::move(config))),
      ctx_(ctx),
      comm_(comm),
      uploader_(ctx.device()),
      micro_batch_(config_.resolved_micro_batch(comm.world_size())),
      train_data_(load_split_for(config_, config_.data, "train", config_.train_samples)),
      step_loss_(ctx.device()),
      forward_timer_(ctx.device()),
      backward_timer_(ctx.device()),
      exposed_comm_timer_(ctx.device()),
      optimizer_timer_(ctx.device()) {
  DPT_CHECK(!config_.exact || ctx_.thread_invariant(),
            "exact mode needs a Context with thread-invariant kernels "
            "(Context::set_thread_invariant(true)), or results would depend on the thread count");
  DPT_CHECK(config_.tf32 == ctx_.allow_tf32(), "config: 'tf32' is ", config_.tf32 ? "on" : "off",
            " but the Context ", ctx_.allow_tf32() ? "allows" : "does not allow",
            " TF32 (Context::set_allow_tf32): the flag would be ignored");
  if (config_.eval) {
    test_data_ = load_split_for(config_, config_.data, "test", config_.test_samples);
  }
  DPT_CHECK(train_data_.size() >= config_.batch_size, "dataset '", config_.data, "' split train has ",
            train_data_.size(), " samples, fewer than one global batch (batch-size ",
            config_.batch_size, ")");

  const bool text = train_data_.kind() == io::DatasetKind::kTokens;
  const std::int64_t classes = train_data_.meta().num_classes;  // the vocabulary for text
  if (text) {
    if (config_.vocab_size == 0) config_.vocab_size = classes;
    DPT_CHECK(config_.vocab_size >= classes, "config: 'vocab-size' ", config_.vocab_size,
              " is smaller than the vocabulary of dataset '", config_.data, "' (", classes,
              " tokens)");
  }
  targets_per_sample_ = targets_per_sample(config_);
  layers_ = layers_of(config_);
  model_ = build_model_of_config(config_, train_data_.sample_shape(), ctx_.device());
  const Shape out = model_.output_shape(1);
  const Shape expected =
      text ? Shape{1, config_.block_size, config_.vocab_size} : Shape{1, classes};
  DPT_CHECK(out == expected, "model '", config_.model, "' produces ", dpt::to_string(out),
            " for one sample but dataset '", config_.data, "' has ", classes,
            text ? " tokens" : " classes", ": expected ", dpt::to_string(expected));
  model_.init_parameters(config_.seed);
  // --bucket-mb, when given, governs the cut exactly; otherwise the automatic layout splits small
  // models (the start-up log says which).
  DataParallelOptions ddp = DataParallelOptions::automatic_layout();
  if (config_.bucket_mb) {
    ddp = DataParallelOptions{};
    ddp.bucket_mb = *config_.bucket_mb;
  }
  ddp.overlap = !config_.no_overlap;
  if (config_.exact) {
    ddp.exact_total_shards = config_.shards_per_step();
    ddp.exact_local_shards = static_cast<int>(config_.shards_per_step() / comm_.world_size());
  }
  ddp.shard_optimizer = config_.zero == 1;
  ddp.reduce_bf16 = config_.grad_reduce == "bf16";
  ddp.cast_context = &ctx_;
  DPT_CHECK(!ddp.shard_optimizer || !config_.exact || comm_.backend() != "nccl",
            "--zero 1 with --exact: the NCCL communicator's exact sum covers whole buckets only; "
            "run exact mode on GPUs without --zero");
  ddp_ = std::make_unique<DataParallel>(model_, comm_, ddp);
  // A sharded optimizer keeps state for this rank's range only (Note [Sharded optimizer]).
  optimizer_ = make_optimizer(optimizer_config(config_),
                              ddp_->owned_range(model_.flat_params()).numel(), ctx_.device());
  nonfinite_ = std::make_unique<NonfiniteGuard>(ctx_, comm_, model_, *ddp_,
                                                parse_nonfinite_policy(config_.nonfinite),
                                                config_.nonfinite_skip_limit);
  if (config_.precision == "fp16") {
    scaler_.emplace(config_.loss_scale, config_.loss_scale_growth_interval);
  }
  if (config_.check_params_every > 0) {
    // Sharded optimizer state differs between ranks by design: the check hashes parameters only.
    param_check_ = std::make_unique<ParamCheck>(ctx_, comm_, model_,
                                                ddp_->sharded() ? nullptr : optimizer_.get());
  }
  check_ranks_agree();
  // Initialisation depends on the seed only, so ranks already agree; the broadcast makes it so
  // whatever happens (and is what a resumed run relies on).
  ddp_->broadcast_parameters();

  // Training drops the last partial batch (loader.h), so an epoch is this many steps on every rank.
  steps_per_epoch_ = train_data_.size() / config_.batch_size;
  std::int64_t total = steps_per_epoch_ * config_.epochs;
  if (config_.steps > 0) total = std::min(total, config_.steps);
  schedule_.kind = parse_schedule(config_.lr_schedule);
  schedule_.base_lr = config_.lr;
  schedule_.warmup_steps = config_.warmup_steps;
  schedule_.total_steps = total;
  schedule_.min_lr = config_.min_lr;
  schedule_.step_size = config_.lr_step_size;
  schedule_.gamma = config_.lr_gamma;

  if (!config_.checkpoint_dir.empty()) {
    checkpoints_.emplace(config_.checkpoint_dir);
    // Fail before step 1, on every rank, when rank 0 cannot write there.
    on_rank0_agreed([&] { checkpoints_->prepare(); });
  }
  if (!config_.resume.empty()) start_ = resume();
}

Trainer::~Trainer() = default;

void Trainer::check_ranks_agree() {
  const comm::LabelScope label(comm_, {"start-up agreement", -1, -1});
  // Every rank sends its facts (nn/train/agreement.h) and compares them with rank 0's.
  const std::string text = disagreements(comm_.all_gather(
      setup_facts(config_, model_, train_data_, test_data_ ? &*test_data_ : nullptr)));
  DPT_CHECK(text.empty(), "ranks disagree on their set-up (config, model, data or build):", text);
}

void Trainer::on_rank0_agreed(const std::function<void()>& work) {
  std::string failure;
  ErrorKind kind = ErrorKind::kIo;
  if (comm_.rank() == 0) {
    try {
      work();
    } catch (const Error& e) {
      failure = e.message();
      kind = e.kind();
    }
  }
  const std::vector<std::string> all = comm_.all_gather(failure);
  if (all[0].empty()) return;
  if (comm_.rank() == 0) throw Error(kind, all[0]);
  DPT_FAIL_KIND(kind, "rank 0 failed: ", all[0]);
}

namespace {
// Config keys that may differ between a checkpoint and the run resuming it without comment.
bool is_run_local_key(const std::string& line) {
  for (const char* key :
       {"resume ", "checkpoint-", "keep-last ", "async-checkpoint ", "threads ", "metrics ",
        "allow-inexact-resume ", "collective-timeout ", "check-collectives ", "check-params-every ",
        "log-every ", "log-all-ranks ", "quiet ", "device "}) {
    if (line.starts_with(key)) return true;
  }
  return false;
}
}  // namespace

TrainPosition Trainer::resume() {
  const comm::LabelScope label(comm_, {"resume", -1, -1});
  // [0] resumed (0/1), [1] step, [2] epoch, [3] optimizer step count, [4] the fp16 loss scale
  // (the bits of its double; 0: none in the checkpoint), [5] its growth tracker
  std::int64_t header[6] = {0, 0, 0, 0, 0, 0};
  // A sharded optimizer: rank 0 reads the whole state into an unsharded optimizer, then
  // scatters each rank's range (the file is the same whatever the sharding).
  std::unique_ptr<Optimizer> whole;
  on_rank0_agreed([&] {
    io::CheckpointState state;
    std::string path;
    if (config_.resume == "auto") {
      std::optional<io::FoundCheckpoint> found = checkpoints_->load_newest();
      if (!found) {
        log(LogLevel::kInfo, "resume auto: no checkpoint in ", checkpoints_->path(),
            ": starting from step 0");
        return;
      }
      for (const std::string& why : found->skipped) {
        log(LogLevel::kWarning, "resume auto: passing over a damaged checkpoint: ", why);
      }
      if (!found->skipped.empty()) {
        log(LogLevel::kWarning, "resume auto: falling back to ", found->path);
      }
      path = found->path;
      state = std::move(found->state);
    } else {
      path = config_.resume;
      state = io::read_checkpoint_file(path);
    }
    DPT_CHECK_KIND(ErrorKind::kIo, state.global_batch == config_.batch_size, path,
                   ": attribute 'global_batch' of / is ", state.global_batch,
                   " but this run has --batch-size ", config_.batch_size,
                   ": a resume keeps the global batch (data order and position depend on it)");
    DPT_CHECK_KIND(ErrorKind::kIo, state.seed == config_.seed, path, ": attribute 'seed' of / is ",
                   state.seed, " but this run has --seed ", config_.seed,
                   ": a resume keeps the seed (data order, dropout and augmentation depend on it)");
    DPT_CHECK_KIND(ErrorKind::kIo, state.step / steps_per_epoch_ == state.epoch, path,
                   ": step ", state.step, " is in epoch ", state.epoch,
                   " there, but this run has ", steps_per_epoch_,
                   " steps per epoch (different --data or --train-samples?)");
    check_elastic_resume(state, path);
    if (ddp_->sharded()) {
      whole = make_optimizer(optimizer_config(config_), model_.flat_params().numel(),
                             ctx_.device());
    }
    restore_checkpoint(state, path, model_, whole ? whole.get() : optimizer_.get());
    header[0] = 1;
    header[1] = state.step;
    header[2] = state.epoch;
    header[3] = state.optimizer_steps;
    for (const auto& [name, value] : state.hyper) {
      if (name == "loss_scale") std::memcpy(&header[4], &value, sizeof value);
      if (name == "loss_scale_growth_tracker") header[5] = static_cast<std::int64_t>(value);
    }

    std::ostringstream changed;
    const std::vector<std::string> before = lines_of(state.config), now = lines_of(to_toml(config_));
    for (const std::string& line : now) {
      if (!line.empty() && !is_run_local_key(line) &&
          std::find(before.begin(), before.end(), line) == before.end()) {
        changed << "\n  " << line;
      }
    }
    log(LogLevel::kInfo, "resuming from ", path, " at step ", state.step, " (epoch ", state.epoch,
        ", written by ", state.world_size, " rank(s))");
    if (!changed.str().empty()) {
      log(LogLevel::kInfo, "settings that differ from the checkpoint's:", changed.str());
    }
  });
  comm_.broadcast(header, sizeof(header), 0);
  if (header[0] == 0) return TrainPosition{};
  ddp_->broadcast_parameters();
  if (ddp_->sharded()) {
    for (const std::string& name : optimizer_->slot_names()) {
      comm_.scatter(whole ? whole->slot(name).data<float>() : nullptr,
                    optimizer_->slot(name).data<float>(), ddp_->shard_counts(), 0);
    }
  } else {
    broadcast_optimizer_state();
  }
  optimizer_->set_step_count(header[3]);
  if (scaler_ && header[4] != 0) {
    double scale = 0.0;
    std::memcpy(&scale, &header[4], sizeof scale);
    scaler_->restore(scale, header[5]);
  }
  return TrainPosition{header[1], header[2]};
}

// Note [Elastic resume]
// ~~~~~~~~~~~~~~~~~~~~~
// A checkpoint holds everything a step depends on (Checkpoints and stopping in docs/design.md),
// and in exact mode a step's result does not depend on the number of ranks. So a checkpoint
// written in exact mode on N ranks continues bit for bit on any M dividing its shard count, with
// the same shard size. Anywhere else a change of world size changes the rounding of every later
// step: such a resume is refused with the reason unless --allow-inexact-resume asks for it.
void Trainer::check_elastic_resume(const io::CheckpointState& state, const std::string& path) {
  if (state.world_size == comm_.world_size()) return;
  // The checkpoint's own settings (its global batch is this run's: checked before).
  const TrainConfig written = config_of_checkpoint(state, path);
  if (written.exact && config_.exact &&
      written.resolved_shard_size() == config_.resolved_shard_size()) {
    log(LogLevel::kInfo, "elastic resume in exact mode: written by ", state.world_size,
        " rank(s), continuing on ", comm_.world_size(), " bit for bit");
    return;
  }
  const std::string reason =
      !written.exact ? std::string("the checkpoint was not written in exact mode")
      : !config_.exact
          ? std::string("this run is not in exact mode (--exact)")
          : detail::str("the checkpoint's shard size is ", written.resolved_shard_size(),
                        ", this run's ", config_.resolved_shard_size());
  DPT_CHECK(config_.allow_inexact_resume, path, ": written by ", state.world_size,
            " rank(s), resumed on ", comm_.world_size(),
            ": the continuation cannot be bit for bit because ", reason,
            "; pass --allow-inexact-resume to resume anyway (results then differ from an "
            "uninterrupted run by rounding)");
  log(LogLevel::kWarning, "resuming a checkpoint of ", state.world_size, " rank(s) on ",
      comm_.world_size(), " although ", reason,
      " (--allow-inexact-resume): results differ from an uninterrupted run by rounding");
}

void Trainer::broadcast_optimizer_state() {
  for (const std::string& name : optimizer_->slot_names()) {
    Tensor& slot = optimizer_->slot(name);
    comm_.broadcast(slot.raw_data(), static_cast<std::int64_t>(slot.size_bytes()), 0);
  }
}

std::string Trainer::save_checkpoint(const TrainPosition& position) {
  const comm::LabelScope label(comm_, {"checkpoint", -1, position.step});
  std::string path;
  ddp_->gather_parameters();
  // Never write a checkpoint that ranks disagree on (Note [Parameter check]).
  if (param_check_) param_check_->check(position.step - 1);
  // A sharded optimizer's state is gathered on rank 0: the file holds the whole state, the same
  // as an unsharded run's, so it resumes on any number of ranks, sharded or not.
  std::vector<Tensor> whole_slots;
  if (ddp_->sharded()) {
    const std::int64_t numel = model_.flat_params().numel();
    for (const std::string& name : optimizer_->slot_names()) {
      Tensor whole = comm_.rank() == 0 ? Tensor::empty({numel}, DType::kF32, ctx_.device())
                                       : Tensor();
      comm_.gather(optimizer_->slot(name).data<float>(),
                   comm_.rank() == 0 ? whole.data<float>() : nullptr, ddp_->shard_counts(), 0);
      whole_slots.push_back(std::move(whole));
    }
  }
  on_rank0_agreed([&] {
    Stopwatch watch;
    checkpoint_wait_ms_ = 0.0;
    if (config_.async_checkpoint) {
      if (!writer_) {
        writer_ =
            std::make_unique<CheckpointWriter>(*checkpoints_, static_cast<int>(config_.keep_last));
      }
      // At most one write in flight; a failed one ends the run here, on every rank.
      writer_->wait();
      checkpoint_wait_ms_ = watch.elapsed_ms();
      watch.restart();
    }
    // The snapshot: parameters and optimizer state copied to host memory, so that training may go
    // on while the copy is written. On a GPU the copies run on a copy stream alongside the next
    // step's forward and backward (Note [Snapshots on a copy stream]).
    if (!snapshotter_) snapshotter_ = std::make_unique<HostSnapshotter>(ctx_.device());
    snapshot_fence_.order_compute_after();  // an earlier snapshot's, if no step came between
    CheckpointSnapshot snapshot = take_checkpoint_snapshot(
        config_, layers_, model_, *optimizer_, schedule_.lr_at(position.step), position,
        comm_.world_size(), *snapshotter_, whole_slots);
    snapshot_fence_ = snapshot.fence;
    io::CheckpointState& state = snapshot.state;
    if (scaler_) {  // Note [Loss scaling]: restored exactly on resume
      state.hyper.emplace_back("loss_scale", scaler_->scale());
      state.hyper.emplace_back("loss_scale_growth_tracker",
                               static_cast<double>(scaler_->growth_tracker()));
    }
    if (train_data_.kind() == io::DatasetKind::kTokens) {  // for `train sample`
      state.tokenizer = io::tokenizer_name(train_data_.tokenizer());
      state.vocabulary = train_data_.vocabulary().stored_entries();
    }
    if (writer_) {  // the writer waits for the copies and checks them for NaN/Inf
      path = writer_->submit(std::move(state), std::move(snapshot.fence));
      checkpoint_snapshot_ms_ = watch.elapsed_ms();
      return;
    }
    snapshot.fence.wait_on_host();
    check_checkpoint_finite(state);
    path = checkpoints_->save(state, static_cast<int>(config_.keep_last));
    checkpoint_snapshot_ms_ = watch.elapsed_ms();
    sync_write_seconds_ += watch.elapsed_s();
    log(LogLevel::kDebug, "checkpoint ", path, " written in ", watch.elapsed_ms(), " ms");
  });
  return path;
}

void Trainer::finish_checkpoint_write() {
  if (!config_.async_checkpoint) return;
  const comm::LabelScope label(comm_, {"checkpoint write", -1, -1});
  on_rank0_agreed([&] {
    if (writer_) writer_->wait();
  });
}

// On GPUs, which rank drives which device of which node: rank 0 prints the all-gathered list
// (the first 16 ranks of a larger job), so that a wrong mapping shows before training starts.
void Trainer::log_devices() {
  if (ctx_.device().type != DeviceType::kCuda) return;
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  const std::vector<std::string> devices =
      comm_.all_gather(detail::str(host, " ", describe(ctx_.device())));
  std::string lines;
  const std::size_t shown = std::min<std::size_t>(devices.size(), 16);
  for (std::size_t r = 0; r < shown; ++r) lines += detail::str("\n  rank ", r, ": ", devices[r]);
  if (shown < devices.size()) lines += detail::str("\n  ... and ", devices.size() - shown, " more");
  log_rank0(LogLevel::kInfo, "devices:", lines);
}

// Note [Device-side timing]
// ~~~~~~~~~~~~~~~~~~~~~~~~~
// On a GPU the host only queues work, so host clocks around forward or the optimizer measure how
// long queueing took. The phases are timed with DeviceTimer instead (event pairs on the compute
// stream, read once when the step's loss is read): forward (with the loss), backward, exposed
// communication (from the end of backward's kernels to the end of the compute stream's wait for
// the last all-reduce) and optimizer mean on a GPU what they mean on the CPU, where DeviceTimer is
// the host clock. Each all-reduce's own duration comes from its events (Work::duration_ms).
LossTotals Trainer::train_step(io::Batch& batch, std::int64_t step, StepBreakdown& times) {
  const Tensor& inputs = batch.inputs;
  const Tensor& labels = batch.labels;
  const std::int64_t targets = targets_per_sample_;  // labels per sample
  // The batch's first use: kernels from here on run after its upload (Note [Upload one step
  // ahead]); the copy of the next batch, queued already, is not waited for.
  batch.ready.wait_on_device();
  const std::int64_t rows_total = inputs.dim(0);
  const std::int64_t micro = micro_batch_;
  step_loss_.begin_step(rows_total * targets);
  for (std::int64_t start = 0; start < rows_total; start += micro) {
    const std::int64_t count = std::min(micro, rows_total - start);
    StepInfo info;
    info.training = true;
    info.seed = config_.seed;
    info.step = static_cast<std::uint32_t>(step);
    info.first_sample = batch.first_position + start;
    // Exact mode: every shard writes a gradient buffer of its own (Note [Shard gradients]).
    info.accumulate_grads = start > 0 && !config_.exact;
    info.timeline = timeline_ ? &*timeline_ : nullptr;
    info.compute = config_.compute_format();

    forward_timer_.begin();
    // Exact mode: a shard's input gets a fresh (aligned) buffer, so that no kernel can choose a
    // different algorithm for it by where the shard happens to start in this rank's batch (its
    // offset depends on the world size; cuBLASLt plans, for one, are chosen per alignment).
    const Tensor samples = Tensor::rows_of(inputs, start, count);
    Tensor input = config_.exact ? samples.clone() : samples;
    const fault::Action injected = fault::at("forward", step);
    const bool poison = injected == fault::Action::kNan || injected == fault::Action::kInf;
    if (poison && input.dtype() == DType::kF32) {
      input = samples.clone();  // the batch itself stays clean
      Tensor::view_of(input, 0, {1}).fill(fault::poison_value(injected));
    }
    // A language model's logits [b, T, V] are b*T rows of V, one per target token.
    const Tensor logits = as_rows(model_.forward(ctx_, input, info));
    // Tokens cannot hold a NaN: the first logit does instead.
    if (poison && input.dtype() != DType::kF32) {
      Tensor::view_of(logits, 0, {1}).fill(fault::poison_value(injected));
    }
    Tensor dlogits = Tensor::empty(logits.shape(), DType::kF32, logits.device());
    kernels::softmax_cross_entropy_rows(
        ctx_, logits, Tensor::rows_of(labels, start * targets, count * targets), &dlogits,
        step_loss_.micro_batch(start * targets, count * targets));
    if (corrupt_gradients_ && start == 0) {
      Tensor first = Tensor::view_of(dlogits, 0, {1});
      kernels::scale(ctx_, first, 1.5f);
    }
    // fp16: every gradient from here on is S times the true one (Note [Loss scaling]).
    if (scaler_) kernels::scale(ctx_, dlogits, static_cast<float>(scaler_->scale()));
    forward_timer_.end();

    backward_timer_.begin();
    // Only the last micro-batch's backward reduces (Note [Last micro-step]): the others add
    // into the local gradients, which that reduction then carries.
    ddp_->prepare_backward(/*reduce=*/start + count == rows_total, step,
                           /*shard=*/static_cast<int>(start / micro));
    model_.backward(ctx_, dlogits.reshape(model_.output_shape(count)), info);
    backward_timer_.end();
  }
  const double finish_start = steady_now_seconds();
  exposed_comm_timer_.begin();
  ddp_->finish();  // on a GPU: stream waits only (Note [Device-side finish])
  exposed_comm_timer_.end();
  const bool trace = timeline_ && timeline_->recording();
  if (trace) timeline_->add("wait for all-reduce", "allreduce", finish_start, steady_now_seconds());

  const double optimizer_start = steady_now_seconds();
  optimizer_timer_.begin();
  // Gradients are sums over the global batch; the mean (and any clipping) is one factor that
  // the optimizer applies as it reads them, so it costs no pass of its own.
  const Tensor& grads = model_.flat_grads();
  double grad_scale = 1.0 / static_cast<double>(config_.batch_size * targets);
  // NaN or Inf on any rank: every rank aborts, or skips the optimizer (Note [Non-finite
  // gradients]); under fp16 loss scaling an overflow skips the step and halves the scale (Note
  // [Loss scaling]).
  step_skipped_ = nonfinite_->skip_step(step, scaler_.has_value());
  step_loss_scale_ = scaler_ ? scaler_->scale() : 1.0;
  if (scaler_) {
    grad_scale /= scaler_->scale();  // exact: a power of two
    scaler_->update(step_skipped_);
    DPT_CHECK(!step_skipped_ || scaler_->scale() >= LossScaler::kSmallestUsefulScale,
              "non-finite gradients at step ", step, " with the loss scale down to ",
              step_loss_scale_, " after ", scaler_->overflows(),
              " overflow(s): no loss scale removes them (the model diverged; lower --lr, set "
              "--clip-grad-norm, or use --precision bf16)");
  }
  if (config_.clip_grad_norm > 0.0 && !step_skipped_) {
    // The norm comes back to the host: check the all-reduces first, so that a failed or stalled
    // one ends in its error or the timeout, not in a read that waits for it forever.
    ddp_->complete();
    grad_scale *= clip_from_sum_squares(ddp_->gradient_sum_squares(ctx_), grad_scale,
                                        config_.clip_grad_norm)
                      .coefficient;
  }
  // The first write to parameters and optimizer state since a checkpoint's snapshot: on a GPU,
  // after its copies (Note [Snapshots on a copy stream]; a stream wait, the host goes on).
  snapshot_fence_.order_compute_after();
  if (!step_skipped_) {
    // This rank's range: all of it, or a sharded optimizer's own (Note [Sharded optimizer]).
    Tensor params = ddp_->owned_range(model_.flat_params());
    optimizer_->step(ctx_, params, ddp_->owned_range(grads), schedule_.lr_at(step), grad_scale);
    ddp_->parameters_updated();
  }
  optimizer_timer_.end();
  if (fault::at("optimizer", step) == fault::Action::kFlip) flip_lowest_bit(model_.flat_params());
  if (trace) timeline_->add("optimizer", "optimizer", optimizer_start, steady_now_seconds());

  // The host waits here, once, with the optimizer queued: the all-reduces first (their errors and
  // the NCCL timeout surface here), then the loss (Note [One loss read per step]).
  ddp_->complete();
  const LossTotals loss = step_loss_.read(labels, train_data_.meta().num_classes);
  // Forward's waits for a sharded optimizer's parameter all-gathers are communication.
  const double gather_wait_ms = ddp_->take_gather_wait_ms();
  times.forward_ms += forward_timer_.take_ms() - gather_wait_ms;
  times.comm_exposed_ms += gather_wait_ms;
  times.backward_ms += backward_timer_.take_ms();
  times.comm_exposed_ms += exposed_comm_timer_.take_ms();
  times.optimizer_ms += optimizer_timer_.take_ms();
  for (const BucketRecord& r : ddp_->records()) {
    times.comm_total_ms += r.duration_ms;
    if (!trace) continue;
    const GradBucket& b = ddp_->buckets()[static_cast<std::size_t>(r.bucket)];
    const std::int64_t kib = b.count * static_cast<std::int64_t>(sizeof(float)) / 1024;
    timeline_->add(detail::str("all-reduce bucket ", r.bucket, " (", kib, " KiB)"), "allreduce",
                   r.started, r.finished, TimelineTrack::kCommunication);
  }
  return loss;
}

// Note [Step check]
// ~~~~~~~~~~~~~~~~~
// Collectives match by issue order, not by meaning: a rank that skipped a step (or ran one more,
// or left training early) sends its next step's buckets against its peers' current ones, its
// end-of-run collectives against their gradient buckets. Same-sized all-reduces then mix
// different steps silently; different-sized ones crash inside MPI or hang. So before each step
// and once after the last, every rank all-reduces one int64 pair (its position as 2 x step +
// ended, and its negation, under MAX: the largest and smallest position at once). Equal: go on.
// Different: an all-gather of the positions (every rank saw the same MAX, so all take this
// branch together) names each rank's step in one error on every rank. Cost: one 16-byte
// all-reduce a step, a few microseconds. --check-collectives compares every collective instead.
void Trainer::check_same_step(std::int64_t step, bool ended) {
  if (comm_.world_size() == 1) return;
  const comm::LabelScope label(comm_, {"step check", -1, step});
  const std::int64_t position = 2 * step + (ended ? 1 : 0);
  std::int64_t extremes[2] = {position, -position};
  comm_.all_reduce(extremes, 2, comm::ReduceOp::kMax);
  if (extremes[0] == -extremes[1]) return;
  const std::vector<std::string> all = comm_.all_gather(std::to_string(position));
  std::string where;
  for (std::size_t r = 0; r < all.size(); ++r) {
    const std::int64_t p = std::stoll(all[r]);
    where += detail::str(r == 0 ? "" : "; ", "rank ", r,
                         p % 2 == 0 ? detail::str(" starts step ", p / 2)
                                    : detail::str(" has ended training after ", p / 2, " steps"));
  }
  DPT_FAIL_KIND(ErrorKind::kComm,
                "ranks are at different steps (a rank skipped, repeated or "
                "left steps): ",
                where);
}

Trainer::StepOutcome Trainer::agree_on_step(const LossTotals& loss, std::int64_t step) {
  const comm::LabelScope label(comm_, {"step agreement", -1, step});
  // Behind the gradient buckets in the communicator's order; every rank reports the global mean.
  // The same call tells every rank whether any rank received a stop signal, so that all stop
  // after this same step.
  const int local_signal = stop_signal();
  const bool term = local_signal == SIGTERM, other = local_signal != 0 && !term;
  // And whether rank 0's background checkpoint write has failed (--async-checkpoint), so that
  // every rank learns it after the same step without a collective of its own.
  const bool write_failed = writer_ && writer_->failed();
  StepOutcome outcome;
  bool any_write_failed = false;
  if (config_.exact) {
    // Fixed point: the sum is the same whatever ranks added which samples (Note [Exact gradient
    // sum] in runtime/exact_sum.cpp; losses use exact::to_fixed_loss).
    std::int64_t reduced[5] = {loss.fixed_sum, loss.unrepresented, term ? 1 : 0, other ? 1 : 0,
                               write_failed ? 1 : 0};
    comm_.all_reduce(reduced, 5, comm::ReduceOp::kSum);
    outcome.loss_sum = reduced[1] > 0 ? std::numeric_limits<double>::quiet_NaN()
                                      : exact::from_fixed_loss(reduced[0]);
    outcome.signal = reduced[2] > 0 ? SIGTERM : (reduced[3] > 0 ? SIGUSR1 : 0);
    any_write_failed = reduced[4] > 0;
  } else {
    double reduced[4] = {loss.sum, term ? 1.0 : 0.0, other ? 1.0 : 0.0, write_failed ? 1.0 : 0.0};
    comm_.all_reduce(reduced, 4, comm::ReduceOp::kSum);
    outcome.loss_sum = reduced[0];
    outcome.signal = reduced[1] > 0 ? SIGTERM : (reduced[2] > 0 ? SIGUSR1 : 0);
    any_write_failed = reduced[3] > 0;
  }
  // Every rank takes this branch together; rank 0's message reaches the others (the all-gather
  // runs on this failure path only) and all throw it.
  if (any_write_failed) finish_checkpoint_write();
  return outcome;
}

io::LoaderOptions Trainer::loader_options() const {
  io::LoaderOptions options;
  options.global_batch = config_.batch_size;
  options.shuffle = true;
  options.drop_last = true;
  options.rank = comm_.rank();
  options.world_size = comm_.world_size();
  options.seed = config_.seed;
  options.first_epoch = start_.step / steps_per_epoch_;
  options.first_step_in_epoch = start_.step % steps_per_epoch_;
  options.epochs = std::max<std::int64_t>(0, config_.epochs - options.first_epoch);
  options.augment_flip = config_.augment == "flip";
  return options;
}

std::optional<double> Trainer::step() {
  if (!step_loader_) step_loader_ = std::make_unique<io::Loader>(train_data_, loader_options());
  if (start_.step + stepped_ >= schedule_.total_steps) return std::nullopt;
  std::optional<io::Batch> host = step_loader_->next();
  if (!host) return std::nullopt;
  io::Batch batch = on_device(uploader_, std::move(*host));
  StepBreakdown ignored;
  check_same_step(start_.step + stepped_, /*ended=*/false);
  const StepOutcome outcome =
      agree_on_step(train_step(batch, start_.step + stepped_, ignored), start_.step + stepped_);
  ddp_->gather_parameters();  // callers read the parameters between steps
  ++stepped_;
  return outcome.loss_sum / static_cast<double>(config_.batch_size * targets_per_sample_);
}

TrainResult Trainer::run() {
  io::Loader loader(train_data_, loader_options());
  DPT_ASSERT(loader.steps_per_epoch() == steps_per_epoch_);
  const std::int64_t total_steps = schedule_.total_steps;

  log_devices();
  log_rank0(LogLevel::kInfo, "model ", config_.model, " (", model_.num_parameters(),
            " parameters):\n", model_.summary());
  log_rank0(LogLevel::kInfo, "data ", train_data_.identity(), "; ", steps_per_epoch_,
            " steps per epoch of ", config_.batch_size, "; running ", total_steps, " steps on ",
            comm_.world_size(), " rank(s) (", comm_.backend(), ", ", comm_.node_count(),
            " node(s)), ", dpt::to_string(ctx_.device()), " with ", ctx_.threads(),
            " thread(s) per rank, micro-batch ", micro_batch_);
  if (config_.exact) {
    log_rank0(LogLevel::kInfo, "exact mode: ", config_.shards_per_step(), " shards of ",
              micro_batch_, " samples per step, ", config_.shards_per_step() / comm_.world_size(),
              " per rank; results are the same bits on any number of ranks dividing ",
              config_.shards_per_step(), " and any thread count");
  }
  log_rank0(LogLevel::kInfo, ddp_->buckets().size(), " gradient bucket(s), ",
            config_.bucket_mb ? detail::str("--bucket-mb ", *config_.bucket_mb)
                              : std::string("automatic (--bucket-mb not given)"),
            ": ", describe_layout_rule(ddp_->options()), "; in all-reduce order:\n",
            describe_buckets(model_, ddp_->buckets()));

  MetricsWriter metrics(comm_.rank() == 0 ? config_.metrics : std::string());
  ProgressLine progress(config_.quiet || !prints(),
                        config_.log_all_ranks ? detail::str("[rank ", comm_.rank(), "] ") : "");
  TrainResult result;
  result.first_step = start_.step;
  result.steps = start_.step;
  // A resumed run does not rewrite the checkpoint it started from.
  std::int64_t saved_step = config_.resume.empty() ? -1 : start_.step;
  StepBreakdown totals;
  auto checkpoint = [&](std::int64_t epoch_of_next_step) {
    Stopwatch watch;
    const TimelineScope span(timeline_ ? &*timeline_ : nullptr, "checkpoint",
                             detail::str("checkpoint step ", result.steps));
    result.last_checkpoint = save_checkpoint(TrainPosition{result.steps, epoch_of_next_step});
    saved_step = result.steps;
    const double ms = watch.elapsed_ms();
    if (comm_.rank() == 0 && config_.async_checkpoint) {
      const auto waited = static_cast<long long>(checkpoint_wait_ms_);
      progress.print(detail::str(
          "checkpoint ", result.last_checkpoint, " (step ", result.steps, ", snapshot ",
          static_cast<long long>(checkpoint_snapshot_ms_), " ms",
          waited > 0 ? detail::str(" after waiting ", waited, " ms for the previous write") : "",
          ", writing in the background)"));
    } else if (comm_.rank() == 0 || config_.log_all_ranks) {
      progress.print(detail::str("checkpoint ", result.last_checkpoint, " (step ", result.steps,
                                 ", ", static_cast<long long>(ms), " ms)"));
    }
    result.checkpoint_seconds += ms * 1e-3;
    result.checkpoint_stall_seconds += ms * 1e-3;
    ++result.checkpoints;
    // What this checkpoint held training for; in the background, of that, rank 0's wait for the
    // previous write and its snapshot.
    nlohmann::json j = {{"event", "checkpoint"},
                        {"step", result.steps},
                        {"stall_s", ms * 1e-3},
                        {"background", config_.async_checkpoint}};
    if (config_.async_checkpoint) {
      j["wait_s"] = checkpoint_wait_ms_ * 1e-3;
      j["snapshot_s"] = checkpoint_snapshot_ms_ * 1e-3;
    }
    metrics.write_line(j.dump());
  };
  Stopwatch run_time;
  // Note [Training throughput]: samples/s is the samples of the steps after the warm-up divided
  // by the wall time of those steps, each timed from taking its batch to its metrics line.
  // Evaluation and checkpoints run between steps and are timed on their own, so neither an
  // evaluation nor a checkpoint every so often changes the figure.
  double all_steps_s = 0.0;
  std::int64_t epoch = 0;
  bool evaluated_last_step = false;
  if (start_.step >= total_steps) {
    log_rank0(LogLevel::kInfo, "the checkpoint is at step ", start_.step, ", at or past the last step (",
              total_steps, "): nothing to train");
  }

  auto run_eval = [&](std::int64_t eval_epoch, std::int64_t step) {
    if (!test_data_) return;
    Stopwatch watch;
    ddp_->gather_parameters();
    const EvalResult e = evaluate(*test_data_);
    result.eval_seconds += watch.elapsed_s();
    result.last_eval = e;
    const bool tokens = is_language_model(config_);
    std::ostringstream line;
    line << std::fixed << std::setprecision(4) << "epoch " << eval_epoch << " step " << step
         << "  test loss " << e.loss;
    if (tokens) line << "  perplexity " << std::exp(e.loss);
    line << "  accuracy " << e.accuracy << " (" << e.samples << (tokens ? " tokens)" : " samples)");
    progress.print(line.str());
    nlohmann::json j = {{"event", "eval"},   {"epoch", eval_epoch}, {"step", step},
                        {"split", "test"},   {"loss", e.loss},      {"accuracy", e.accuracy},
                        {"samples", e.samples}};
    if (tokens) j["perplexity"] = std::exp(e.loss);
    metrics.write_line(j.dump());
  };

  if (!config_.timeline.empty()) {
    comm_.barrier();  // one origin for every rank's timeline
    timeline_.emplace(steady_now_seconds());
  }
  // Note [Upload one step ahead]: each step takes its batch, already on the device, and starts
  // the upload of the next step's before computing, so that on a GPU that copy (on the
  // uploader's stream) runs while this step's kernels do. On the CPU the upload is the identity.
  std::optional<io::Batch> ahead;
  const auto fetch = [&]() -> std::optional<io::Batch> {
    fault::at("loader", result.steps);
    std::optional<io::Batch> host = loader.next();
    if (!host) return std::nullopt;
    return on_device(uploader_, std::move(*host));
  };
  fault::at("start");
  while (result.steps < total_steps) {
    const fault::Action injected = fault::at("step", result.steps);
    if (injected == fault::Action::kLeave) break;
    if (timeline_) timeline_->set_recording(result.steps - start_.step < config_.timeline_steps);
    const double step_start = steady_now_seconds();
    Stopwatch step_time;
    Stopwatch wait_time;
    std::optional<io::Batch> batch = ahead ? std::move(ahead) : fetch();
    ahead.reset();
    if (batch && result.steps + 1 < total_steps) ahead = fetch();
    const double wait_ms = wait_time.elapsed_ms();
    if (!batch) break;
    if (injected == fault::Action::kSkip) {  // this rank alone skips the step
      ++result.steps;
      continue;
    }
    epoch = batch->epoch;
    const std::int64_t step = result.steps;
    const std::int64_t run_steps = step - start_.step;  // steps before this one in this process
    StepBreakdown times;
    times.data_wait_ms = wait_ms;
    if (timeline_) timeline_->add("data wait", "data", step_start, steady_now_seconds());

    // Forward, backward, all-reduce and the optimizer step.
    check_same_step(step, /*ended=*/false);
    const StepOutcome outcome = agree_on_step(train_step(*batch, step, times), step);
    const double loss_sum = outcome.loss_sum;
    const int agreed_signal = outcome.signal;
    const double lr = schedule_.lr_at(step);  // the rate train_step's optimizer step used
    if (timeline_) {
      timeline_->add(detail::str("step ", step + 1), "step", step_start, steady_now_seconds());
    }

    ++result.steps;
    // The mean over the step's targets: samples, or tokens of a language model.
    const double loss = loss_sum / static_cast<double>(config_.batch_size * targets_per_sample_);
    // A skipped step's loss may be NaN: its inputs were (Note [Non-finite gradients]).
    DPT_CHECK(std::isfinite(loss) || step_skipped_, "training diverged: loss is ", loss,
              " at step ", step, " (lower --lr or set --clip-grad-norm)");
    if (run_steps == 0) result.first_loss = loss;
    if (!step_skipped_) result.last_loss = loss;
    totals.forward_ms += times.forward_ms;
    totals.backward_ms += times.backward_ms;
    totals.comm_exposed_ms += times.comm_exposed_ms;
    totals.comm_total_ms += times.comm_total_ms;
    totals.optimizer_ms += times.optimizer_ms;
    totals.data_wait_ms += times.data_wait_ms;

    const double elapsed = run_time.elapsed_s();
    const double samples_per_sec =
        static_cast<double>(config_.batch_size) / std::max(step_time.elapsed_s(), 1e-9);
    nlohmann::json j = {{"event", "step"}, {"step", result.steps}, {"epoch", epoch},
                        {"loss", loss},    {"lr", lr},             {"samples_per_sec", samples_per_sec}};
    if (step_skipped_) j["skipped"] = scaler_ ? "overflow" : "nonfinite";
    if (scaler_) j["loss_scale"] = step_loss_scale_;
    metrics.write_line(j.dump());
    if (result.steps % config_.log_every == 0 || result.steps == total_steps) {
      const double eta = elapsed / static_cast<double>(run_steps + 1) *
                         static_cast<double>(total_steps - result.steps);
      std::ostringstream line;
      line << "step " << result.steps << '/' << total_steps << "  epoch " << epoch << "  loss "
           << std::fixed << std::setprecision(4) << loss << "  " << std::setprecision(1)
           << samples_per_sec << " samples/s  ETA " << format_duration(eta);
      progress.update(line.str());
    }
    const double step_s = step_time.elapsed_s();
    all_steps_s += step_s;
    if (run_steps >= kWarmupSteps) {
      result.train_seconds += step_s;
      ++result.timed_steps;
    }
    evaluated_last_step = false;
    if (config_.eval && (batch->step_in_epoch == steps_per_epoch_ - 1 ||
                         (config_.eval_every > 0 && result.steps % config_.eval_every == 0))) {
      run_eval(epoch, result.steps);
      evaluated_last_step = true;
    }
    const std::int64_t next_epoch = result.steps / steps_per_epoch_;
    if (agreed_signal != 0) {
      result.stop_signal = agreed_signal;
      log_rank0(LogLevel::kWarning, "stopping after step ", result.steps, " on ",
                agreed_signal == SIGTERM ? "SIGTERM" : "SIGUSR1",
                checkpoints_ ? ": writing a checkpoint" : " (no --checkpoint-dir: nothing saved)");
      if (checkpoints_) checkpoint(next_epoch);
      break;
    }
    if (checkpoints_ && config_.checkpoint_every > 0 &&
        result.steps % config_.checkpoint_every == 0 && result.steps < total_steps) {
      checkpoint(next_epoch);  // checks the parameters first
    } else if (param_check_ && (result.steps % config_.check_params_every == 0 ||
                                result.steps == total_steps)) {
      ddp_->gather_parameters();
      param_check_->check(step);
    }
  }
  fault::at("end");
  check_same_step(result.steps, /*ended=*/true);
  ddp_->gather_parameters();  // what run() leaves (and the final checkpoint) is the whole model
  if (result.stop_signal == 0 && config_.eval && !evaluated_last_step &&
      result.steps > start_.step) {
    run_eval(epoch, result.steps);
  }
  if (checkpoints_ && result.stop_signal == 0 && saved_step != result.steps) {
    checkpoint(result.steps / steps_per_epoch_);
  }
  {  // --async-checkpoint: the last write is complete (or every rank fails) before the summary
    Stopwatch watch;
    finish_checkpoint_write();
    result.checkpoint_seconds += watch.elapsed_s();
  }
  result.checkpoint_write_seconds = writer_ ? writer_->stats().write_seconds : sync_write_seconds_;

  const std::int64_t run_steps = result.steps - start_.step;
  if (result.timed_steps == 0) {  // a run no longer than the warm-up: time all its steps
    result.timed_steps = run_steps;
    result.train_seconds = all_steps_s;
  }
  result.samples_per_sec = static_cast<double>(result.timed_steps * config_.batch_size) /
                           std::max(result.train_seconds, 1e-9);
  result.wall_seconds = run_time.elapsed_s();
  const double n = static_cast<double>(std::max<std::int64_t>(1, run_steps));
  result.breakdown = StepBreakdown{totals.forward_ms / n,      totals.backward_ms / n,
                                   totals.comm_exposed_ms / n,  totals.comm_total_ms / n,
                                   totals.optimizer_ms / n,     totals.data_wait_ms / n};
  nlohmann::json summary = {
      {"event", "summary"},
      {"steps", result.steps},
      {"samples_per_sec", result.samples_per_sec},
      {"step_ms",
       {{"forward", result.breakdown.forward_ms},
        {"backward", result.breakdown.backward_ms},
        {"comm_exposed", result.breakdown.comm_exposed_ms},
        {"comm_total", result.breakdown.comm_total_ms},
        {"optimizer", result.breakdown.optimizer_ms},
        {"data_wait", result.breakdown.data_wait_ms}}},
      {"timed_steps", result.timed_steps},
      {"train_s", result.train_seconds},
      {"eval_s", result.eval_seconds},
      {"checkpoint_s", result.checkpoint_seconds},
      {"wall_s", result.wall_seconds},
      {"bucket_layout", config_.bucket_mb ? "bucket-mb" : "automatic"},
      {"exact", config_.exact},
      {"shard_size", config_.exact ? config_.resolved_shard_size() : 0},
      {"first_step", result.first_step},
      {"final_loss", result.last_loss},
      {"threads", ctx_.threads()},
      {"world_size", comm_.world_size()},
      {"model", config_.model},
      {"batch_size", config_.batch_size}};
  // Of checkpoint_s: the stall at checkpoint steps, and rank 0's writes (in the background with
  // --async-checkpoint, overlapping training).
  summary["checkpoint_stall_s"] = result.checkpoint_stall_seconds;
  summary["checkpoint_write_s"] = result.checkpoint_write_seconds;
  summary["checkpoints"] = result.checkpoints;
  summary["async_checkpoint"] = config_.async_checkpoint;
  for (const BuildFact& fact : build_facts()) {
    summary["build"][std::string(fact.key)] = std::string(fact.value);
  }
  // Memory per rank: optimizer state (a sharded optimizer's range only) and the process's peak
  // resident set (getrusage), each rank's in rank order.
  std::int64_t state_bytes = 0;
  for (const std::string& name : optimizer_->slot_names()) {
    state_bytes += static_cast<std::int64_t>(optimizer_->slot(name).size_bytes());
  }
  summary["zero"] = config_.zero;
  summary["precision"] = config_.precision;
  summary["grad_reduce"] = config_.grad_reduce;
  summary["tf32"] = config_.tf32;
  if (scaler_) {
    summary["loss_scale"] = scaler_->scale();
    summary["overflow_steps"] = scaler_->overflows();
  }
  summary["optimizer_state_bytes"] = nlohmann::json::array();
  summary["peak_rss_bytes"] = nlohmann::json::array();
  // What the layers held between a forward and its backward at most (inputs kept in the compute
  // format under --precision: Note [Mixed precision in layers]).
  summary["peak_activation_bytes"] = nlohmann::json::array();
  {
    const comm::LabelScope label(comm_, {"summary", -1, -1});
    for (const std::string& text : comm_.all_gather(
             nlohmann::json::array({state_bytes, peak_rss_bytes(), model_.peak_activation_bytes()})
                 .dump())) {
      const nlohmann::json each = nlohmann::json::parse(text);
      summary["optimizer_state_bytes"].push_back(each[0]);
      summary["peak_rss_bytes"].push_back(each[1]);
      summary["peak_activation_bytes"].push_back(each[2]);
    }
  }
  // Each rank's compute per step (forward and backward: what differs between ranks); a step
  // waits for the slowest, so the spread is time the others spend waiting.
  if (comm_.world_size() > 1) {
    const comm::LabelScope label(comm_, {"summary", -1, -1});
    const double compute_ms = result.breakdown.forward_ms + result.breakdown.backward_ms;
    nlohmann::json per_rank = nlohmann::json::array();
    double slowest = 0.0, fastest = std::numeric_limits<double>::infinity();
    for (const std::string& text : comm_.all_gather(nlohmann::json(compute_ms).dump())) {
      const double ms = nlohmann::json::parse(text).get<double>();
      per_rank.push_back(ms);
      slowest = std::max(slowest, ms);
      fastest = std::min(fastest, ms);
    }
    summary["rank_compute_ms"] = per_rank;
    summary["rank_imbalance"] = slowest > 0.0 ? (slowest - fastest) / slowest : 0.0;
  }
  if (ctx_.device().type == DeviceType::kCpu) {
    const kernels::CpuGemmFacts gemm = kernels::cpu_gemm_facts();
    summary["cpu_gemm"] = {{"isa", gemm.isa},
                           {"openblas_core", gemm.openblas_core},
                           {"backward_data", gemm.backward_data},
                           {"reason", gemm.reason}};
  }
  if (result.last_eval) summary["test_accuracy"] = result.last_eval->accuracy;
  if (result.stop_signal != 0) summary["stop_signal"] = result.stop_signal;
  // Share of the all-reduce time hidden behind backward: 1 = fully overlapped.
  if (comm_.world_size() > 1 && result.breakdown.comm_total_ms > 0.0) {
    summary["overlap"] = std::clamp(
        1.0 - result.breakdown.comm_exposed_ms / result.breakdown.comm_total_ms, 0.0, 1.0);
  }
  if (!result.last_checkpoint.empty()) summary["checkpoint"] = result.last_checkpoint;
  nlohmann::json bucket_mib = nlohmann::json::array();
  for (const GradBucket& b : ddp_->buckets()) bucket_mib.push_back(b.mib());
  summary["bucket_mib"] = bucket_mib;
  if (is_language_model(config_)) {
    summary["tokens_per_sec"] = result.samples_per_sec * static_cast<double>(targets_per_sample_);
  }
  result.nonfinite_skipped = nonfinite_->skipped();
  summary["nonfinite_skipped"] = result.nonfinite_skipped;
  metrics.write_line(summary.dump());
  std::ostringstream done;
  done << std::fixed << std::setprecision(1) << "done: " << result.steps << " steps in "
       << format_duration(result.wall_seconds) << " (training " << all_steps_s << " s, evaluation "
       << result.eval_seconds << " s, checkpoints " << result.checkpoint_seconds << " s";
  if (result.checkpoints > 0) {
    done << ": " << result.checkpoints << " taken, stall " << result.checkpoint_stall_seconds
         << " s, " << (config_.async_checkpoint ? "background writes " : "writes ")
         << result.checkpoint_write_seconds << " s";
  }
  done << "), " << result.samples_per_sec << " samples/s";
  if (is_language_model(config_)) {
    done << " (" << result.samples_per_sec * static_cast<double>(targets_per_sample_)
         << " tokens/s)";
  }
  done << " over " << result.timed_steps << " steps (after " << kWarmupSteps
       << " warm-up steps, without evaluation and checkpoints); per step forward "
       << result.breakdown.forward_ms << " ms, backward " << result.breakdown.backward_ms
       << " ms, exposed communication " << result.breakdown.comm_exposed_ms << " ms (of "
       << result.breakdown.comm_total_ms << " ms all-reducing), optimizer "
       << result.breakdown.optimizer_ms << " ms, data wait " << result.breakdown.data_wait_ms
       << " ms";
  progress.print(done.str());
  if (timeline_) {
    write_timeline(comm_, *timeline_, config_.timeline);
    if (comm_.rank() == 0) progress.print("timeline " + config_.timeline);
  }
  return result;
}

EvalResult Trainer::evaluate(const io::DatasetSplit& split) {
  const comm::LabelScope label(comm_, {"evaluation", -1, -1});
  // In the training precision, as autocast would (`train eval` evaluates the f32 weights in f32).
  if (config_.exact) {
    return evaluate_model_exact(ctx_, comm_, model_, split, config_.compute_format());
  }
  return evaluate_model(ctx_, comm_, model_, split, nullptr, config_.compute_format());
}

}  // namespace dpt::nn
