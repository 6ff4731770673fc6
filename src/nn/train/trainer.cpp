// SPDX-License-Identifier: MIT
// The training loop, evaluation and the step-time accounting behind the metrics summary.
#include "nn/train/trainer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>

#include "kernels/ops.h"
#include "nn/train/metrics.h"
#include "runtime/config.h"
#include "runtime/io/loader.h"
#include "runtime/logging.h"
#include "runtime/timer.h"

namespace dpt::nn {
namespace {

// Steps left out of samples/s: the first steps create oneDNN primitives and fill the allocator.
constexpr std::int64_t kWarmupSteps = 5;
// Samples per forward during evaluation (no activations are kept, so larger is cheap).
constexpr std::int64_t kEvalBatch = 500;

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

std::string format_duration(double seconds) {
  const auto s = static_cast<long long>(std::max(0.0, seconds));
  std::ostringstream out;
  if (s >= 3600) out << s / 3600 << 'h';
  out << std::setw(s >= 3600 ? 2 : 1) << std::setfill('0') << (s % 3600) / 60 << 'm'
      << std::setw(2) << std::setfill('0') << s % 60 << 's';
  return out.str();
}

// Rows [first, first + count) of a batch tensor, sharing its storage.
Tensor rows(const Tensor& t, std::int64_t first, std::int64_t count) {
  Shape shape = t.shape();
  const std::int64_t row_numel = t.numel() / shape[0];
  shape[0] = count;
  return Tensor::view_of(t, first * row_numel, shape);
}

}  // namespace

Trainer::Trainer(TrainConfig config, const Context& ctx, comm::Communicator& comm)
    : config_((validate(config), std::move(config))),
      ctx_(ctx),
      comm_(comm),
      micro_batch_(config_.resolved_micro_batch(comm.world_size())),
      train_data_(io::DatasetSplit::load(config_.data, "train", config_.train_samples)) {
  if (config_.eval) test_data_ = io::DatasetSplit::load(config_.data, "test", config_.test_samples);
  DPT_CHECK(train_data_.size() >= config_.batch_size, "dataset '", config_.data, "' split train has ",
            train_data_.size(), " samples, fewer than one global batch (batch-size ",
            config_.batch_size, ")");

  const Shape sample_shape{train_data_.channels(), train_data_.height(), train_data_.width()};
  const auto layers = config_.model == "custom"
                          ? config_.layers
                          : reference_model(config_.model, static_cast<float>(config_.dropout));
  model_ = build_model(layers, sample_shape);
  const Shape out = model_.output_shape(1);
  DPT_CHECK(out.size() == 2 && out[1] == train_data_.meta().num_classes, "model '", config_.model,
            "' produces ", dpt::to_string(out), " for one sample but dataset '", config_.data, "' has ",
            train_data_.meta().num_classes, " classes: expected [1,",
            train_data_.meta().num_classes, "]");
  model_.init_parameters(config_.seed);
  optimizer_ = make_optimizer(optimizer_config(config_), model_.num_parameters());
  DataParallelOptions ddp;
  ddp.bucket_mb = config_.bucket_mb;
  ddp.overlap = !config_.no_overlap;
  ddp_ = std::make_unique<DataParallel>(model_, comm_, ddp);
  check_ranks_agree();
  // Initialisation depends on the seed only, so ranks already agree; the broadcast makes it so
  // whatever happens (and is what a resumed run relies on).
  ddp_->broadcast_parameters();

  const std::int64_t steps_per_epoch = train_data_.size() / config_.batch_size;
  std::int64_t total = steps_per_epoch * config_.epochs;
  if (config_.steps > 0) total = std::min(total, config_.steps);
  schedule_.kind = parse_schedule(config_.lr_schedule);
  schedule_.base_lr = config_.lr;
  schedule_.warmup_steps = config_.warmup_steps;
  schedule_.total_steps = total;
  schedule_.min_lr = config_.min_lr;
  schedule_.step_size = config_.lr_step_size;
  schedule_.gamma = config_.lr_gamma;
}

Trainer::~Trainer() = default;

namespace {
std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}
}  // namespace

void Trainer::check_ranks_agree() {
  // One line per fact; every rank sends its lines and compares them with rank 0's.
  std::ostringstream facts;
  facts << "build = dptrain " << DPT_VERSION << '\n';
  for (const std::string& line : lines_of(to_toml(config_))) {
    if (!line.empty()) facts << "config." << line << '\n';
  }
  for (const Parameter* p : model_.parameters()) {
    facts << "model." << p->name << " = " << dpt::to_string(p->value.shape()) << '\n';
  }
  facts << "data.train = " << train_data_.identity() << '\n';
  if (test_data_) facts << "data.test = " << test_data_->identity() << '\n';
  const std::vector<std::string> all = comm_.all_gather(facts.str());
  std::ostringstream differences;
  const std::vector<std::string> reference = lines_of(all[0]);
  for (std::size_t r = 1; r < all.size(); ++r) {
    const std::vector<std::string> mine = lines_of(all[r]);
    for (std::size_t i = 0; i < std::max(mine.size(), reference.size()); ++i) {
      const std::string a = i < reference.size() ? reference[i] : "(missing)";
      const std::string b = i < mine.size() ? mine[i] : "(missing)";
      if (a != b) differences << "\n  rank 0: " << a << "\n  rank " << r << ": " << b;
    }
  }
  const std::string text = differences.str();
  DPT_CHECK(text.empty(), "ranks disagree on their set-up (config, model, data or build):", text);
}

double Trainer::train_step(const Tensor& images, const Tensor& labels, std::int64_t step,
                           std::int64_t first_position, StepBreakdown& times) {
  const std::int64_t batch = images.dim(0);
  const std::int64_t micro = micro_batch_;
  double loss_sum = 0.0;
  for (std::int64_t start = 0; start < batch; start += micro) {
    const std::int64_t count = std::min(micro, batch - start);
    StepInfo info;
    info.training = true;
    info.seed = config_.seed;
    info.step = static_cast<std::uint32_t>(step);
    info.first_sample = first_position + start;
    info.accumulate_grads = start > 0;

    Stopwatch forward_time;
    const Tensor logits = model_.forward(ctx_, rows(images, start, count), info);
    Tensor dlogits = Tensor::empty(logits.shape());
    loss_sum += kernels::softmax_cross_entropy(ctx_, logits, rows(labels, start, count), &dlogits)
                    .loss_sum;
    times.forward_ms += forward_time.elapsed_ms();

    Stopwatch backward_time;
    // Only the last micro-batch's backward reduces (Note [Last micro-step]): the others add
    // into the local gradients, which that reduction then carries.
    ddp_->prepare_backward(/*reduce=*/start + count == batch);
    model_.backward(ctx_, dlogits, info);
    times.backward_ms += backward_time.elapsed_ms();
  }
  times.comm_exposed_ms += ddp_->finish();
  return loss_sum;
}

TrainResult Trainer::run() {
  io::LoaderOptions options;
  options.global_batch = config_.batch_size;
  options.shuffle = true;
  options.drop_last = true;
  options.rank = comm_.rank();
  options.world_size = comm_.world_size();
  options.seed = config_.seed;
  options.epochs = config_.epochs;
  options.augment_flip = config_.augment == "flip";
  io::Loader loader(train_data_, options);
  const std::int64_t steps_per_epoch = loader.steps_per_epoch();
  const std::int64_t total_steps = schedule_.total_steps;

  log_rank0(LogLevel::kInfo, "model ", config_.model, " (", model_.num_parameters(),
            " parameters):\n", model_.summary());
  log_rank0(LogLevel::kInfo, "data ", train_data_.identity(), "; ", steps_per_epoch,
            " steps per epoch of ", config_.batch_size, "; running ", total_steps, " steps on ",
            comm_.world_size(), " rank(s) (", comm_.backend(), ", ", comm_.node_count(),
            " node(s)), ", dpt::to_string(ctx_.device()), " with ", ctx_.threads(),
            " thread(s) per rank, micro-batch ", micro_batch_, ", ",
            ddp_->buckets().size(), " gradient bucket(s)");

  MetricsWriter metrics(comm_.rank() == 0 ? config_.metrics : std::string());
  ProgressLine progress(config_.quiet || !prints(),
                        config_.log_all_ranks ? detail::str("[rank ", comm_.rank(), "] ") : "");
  TrainResult result;
  StepBreakdown totals;
  Stopwatch run_time;
  Stopwatch steady_time;  // restarted after the warm-up steps
  std::int64_t steady_from = 0;
  std::int64_t epoch = 0;
  bool evaluated_last_step = false;

  auto run_eval = [&](std::int64_t eval_epoch, std::int64_t step) {
    if (!test_data_) return;
    const EvalResult e = evaluate(*test_data_);
    result.last_eval = e;
    std::ostringstream line;
    line << std::fixed << std::setprecision(4) << "epoch " << eval_epoch << " step " << step
         << "  test loss " << e.loss << "  accuracy " << e.accuracy << " (" << e.samples
         << " samples)";
    progress.print(line.str());
    nlohmann::json j = {{"event", "eval"},   {"epoch", eval_epoch}, {"step", step},
                        {"split", "test"},   {"loss", e.loss},      {"accuracy", e.accuracy},
                        {"samples", e.samples}};
    metrics.write_line(j.dump());
  };

  while (result.steps < total_steps) {
    Stopwatch step_time;
    Stopwatch wait_time;
    std::optional<io::Batch> batch = loader.next();
    const double wait_ms = wait_time.elapsed_ms();
    if (!batch) break;
    epoch = batch->epoch;
    const std::int64_t step = result.steps;
    StepBreakdown times;
    times.data_wait_ms = wait_ms;

    double loss_sum =
        train_step(batch->images, batch->labels, step, batch->first_position, times);
    // Behind the gradient buckets in the communicator's order; every rank reports the global mean.
    comm_.all_reduce(&loss_sum, 1, comm::ReduceOp::kSum);
    Stopwatch optimizer_time;
    // Gradients are sums over the global batch; the mean (and any clipping) is one factor that
    // the optimizer applies as it reads them, so it costs no pass of its own.
    const Tensor& grads = model_.flat_grads();
    double grad_scale = 1.0 / static_cast<double>(config_.batch_size);
    if (config_.clip_grad_norm > 0.0) {
      grad_scale *= clip_grad_norm(ctx_, grads, grad_scale, config_.clip_grad_norm).coefficient;
    }
    const double lr = schedule_.lr_at(step);
    optimizer_->step(ctx_, model_.flat_params(), grads, lr, grad_scale);
    times.optimizer_ms = optimizer_time.elapsed_ms();

    ++result.steps;
    const double loss = loss_sum / static_cast<double>(config_.batch_size);
    DPT_CHECK(std::isfinite(loss), "training diverged: loss is ", loss, " at step ", step,
              " (lower --lr or set --clip-grad-norm)");
    if (result.steps == 1) result.first_loss = loss;
    result.last_loss = loss;
    totals.forward_ms += times.forward_ms;
    totals.backward_ms += times.backward_ms;
    totals.comm_exposed_ms += times.comm_exposed_ms;
    totals.optimizer_ms += times.optimizer_ms;
    totals.data_wait_ms += times.data_wait_ms;
    if (result.steps == kWarmupSteps) {
      steady_time.restart();
      steady_from = result.steps;
    }

    const double elapsed = run_time.elapsed_s();
    const double samples_per_sec =
        static_cast<double>(config_.batch_size) / std::max(step_time.elapsed_s(), 1e-9);
    nlohmann::json j = {{"event", "step"}, {"step", result.steps}, {"epoch", epoch},
                        {"loss", loss},    {"lr", lr},             {"samples_per_sec", samples_per_sec}};
    metrics.write_line(j.dump());
    if (result.steps % config_.log_every == 0 || result.steps == total_steps) {
      const double eta = elapsed / static_cast<double>(result.steps) *
                         static_cast<double>(total_steps - result.steps);
      std::ostringstream line;
      line << "step " << result.steps << '/' << total_steps << "  epoch " << epoch << "  loss "
           << std::fixed << std::setprecision(4) << loss << "  " << std::setprecision(1)
           << samples_per_sec << " samples/s  ETA " << format_duration(eta);
      progress.update(line.str());
    }
    evaluated_last_step = false;
    if (config_.eval && batch->step_in_epoch == steps_per_epoch - 1) {
      run_eval(epoch, result.steps);
      evaluated_last_step = true;
    }
  }
  if (config_.eval && !evaluated_last_step && result.steps > 0) run_eval(epoch, result.steps);

  const std::int64_t steady_steps = result.steps - steady_from;
  const double steady_s = steady_from > 0 ? steady_time.elapsed_s() : run_time.elapsed_s();
  result.samples_per_sec =
      static_cast<double>(steady_steps * config_.batch_size) / std::max(steady_s, 1e-9);
  const double n = static_cast<double>(std::max<std::int64_t>(1, result.steps));
  result.breakdown = StepBreakdown{totals.forward_ms / n, totals.backward_ms / n,
                                   totals.comm_exposed_ms / n, totals.optimizer_ms / n,
                                   totals.data_wait_ms / n};
  nlohmann::json summary = {
      {"event", "summary"},
      {"steps", result.steps},
      {"samples_per_sec", result.samples_per_sec},
      {"step_ms",
       {{"forward", result.breakdown.forward_ms},
        {"backward", result.breakdown.backward_ms},
        {"comm_exposed", result.breakdown.comm_exposed_ms},
        {"optimizer", result.breakdown.optimizer_ms},
        {"data_wait", result.breakdown.data_wait_ms}}},
      {"final_loss", result.last_loss},
      {"threads", ctx_.threads()},
      {"world_size", comm_.world_size()},
      {"model", config_.model},
      {"batch_size", config_.batch_size}};
  if (result.last_eval) summary["test_accuracy"] = result.last_eval->accuracy;
  metrics.write_line(summary.dump());
  std::ostringstream done;
  done << std::fixed << std::setprecision(1) << "done: " << result.steps << " steps in "
       << format_duration(run_time.elapsed_s()) << ", " << result.samples_per_sec
       << " samples/s (after " << kWarmupSteps << " warm-up steps); per step forward "
       << result.breakdown.forward_ms << " ms, backward " << result.breakdown.backward_ms
       << " ms, exposed communication " << result.breakdown.comm_exposed_ms << " ms, optimizer " << result.breakdown.optimizer_ms << " ms, data wait "
       << result.breakdown.data_wait_ms << " ms";
  progress.print(done.str());
  return result;
}

EvalResult Trainer::evaluate(const io::DatasetSplit& split) {
  io::LoaderOptions options;
  // Each rank evaluates its share of every batch; the sums are all-reduced.
  options.global_batch = std::max<std::int64_t>(
      comm_.world_size(), std::min<std::int64_t>(kEvalBatch * comm_.world_size(), split.size()));
  options.shuffle = false;
  options.drop_last = false;
  options.seed = config_.seed;
  options.rank = comm_.rank();
  options.world_size = comm_.world_size();
  io::Loader loader(split, options);
  StepInfo info;
  info.training = false;
  double loss_sum = 0.0;
  std::int64_t correct = 0, samples = 0;
  while (auto batch = loader.next()) {
    if (batch->labels.numel() == 0) continue;  // a last batch smaller than the world
    const Tensor logits = model_.forward(ctx_, batch->images, info);
    const kernels::LossResult r =
        kernels::softmax_cross_entropy(ctx_, logits, batch->labels, nullptr);
    loss_sum += r.loss_sum;
    correct += r.correct;
    samples += batch->labels.numel();
  }
  double sums[3] = {loss_sum, static_cast<double>(correct), static_cast<double>(samples)};
  comm_.all_reduce(sums, 3, comm::ReduceOp::kSum);
  loss_sum = sums[0];
  correct = static_cast<std::int64_t>(sums[1]);
  samples = static_cast<std::int64_t>(sums[2]);
  EvalResult e;
  e.samples = samples;
  if (samples > 0) {
    e.loss = loss_sum / static_cast<double>(samples);
    e.accuracy = static_cast<double>(correct) / static_cast<double>(samples);
  }
  return e;
}

}  // namespace dpt::nn
