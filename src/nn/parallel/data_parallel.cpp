// SPDX-License-Identifier: MIT
// Bucket assignment, readiness counting and in-order launch of the gradient all-reduces.
#include "nn/parallel/data_parallel.h"

#include <algorithm>
#include <exception>
#include <iomanip>
#include <sstream>

#include "kernels/ops.h"
#include "runtime/check.h"
#include "runtime/fault.h"
#include "runtime/timeline.h"
#include "runtime/timer.h"

namespace dpt::nn {

// Note [Gradient bucket order]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Buckets are launched strictly by index even if a later one is ready first. MPI (and NCCL)
// match collectives by issue order; ranks that issued buckets in different orders would reduce
// mismatched data or deadlock. Backward produces gradients last layer first, and buckets are
// numbered in that order, so in practice each bucket is launched the moment it is complete.

// Note [Last micro-step]
// ~~~~~~~~~~~~~~~~~~~~~~
// With gradient accumulation a step runs K backward passes. Only the last one reduces: the first
// K-1 add into the local flat gradients, and the last pass's buckets carry the sum of all K. So
// a step costs one all-reduce of the gradients whatever K is, and its result equals a single
// backward over the rank's whole share of the batch.

// Note [Shard gradients]
// ~~~~~~~~~~~~~~~~~~~~~~
// The exact sum quantises each micro-shard's gradient against an exponent that depends on every
// shard of the step, so a rank cannot fold its shards into one float buffer as it goes (that sum
// would round differently for each way of spreading shards over ranks). Instead each local shard
// writes a gradient buffer of its own (Sequential::use_gradient_buffer; the layers write, never
// add), and the last shard's backward launches each bucket's exact sum over all of them. The
// last buffer is the model's own, which receives the sums, so the optimizer reads them where it
// always does. Memory: local shards x the gradients.

// Note [Exact sum chunks]
// ~~~~~~~~~~~~~~~~~~~~~~~
// Values share a fixed-point exponent in chunks of exact_chunk (256) values counted from the start
// of each parameter (its span, alignment gap included). A parameter's chunks never depend on the
// bucket layout or the world size, so neither does the result; a small chunk keeps small
// gradients precise (their exponent is their neighbours'), at one int32 code per chunk on the
// wire (1/64 of the floats).

double steady_seconds() { return steady_now_seconds(); }

namespace {
// The first bucket's cap in MiB: first_bucket_mb, never above the other buckets' cap.
double first_cap_mb(const DataParallelOptions& options) {
  return std::min(options.first_bucket_mb, options.bucket_mb);
}
}  // namespace

std::string describe_layout_rule(const DataParallelOptions& options) {
  std::string text = detail::str(options.bucket_mb, " MiB, the first at most ",
                                 first_cap_mb(options), " MiB");
  if (options.min_buckets > 1) {
    text += detail::str(", at most 1/", options.min_buckets, " of the gradients each");
  }
  if (options.min_bucket_elements > 0) {
    text += detail::str(", none under ",
                        options.min_bucket_elements * static_cast<std::int64_t>(sizeof(float)) / 1024,
                        " KiB closed alone");
  }
  return text;
}

std::string describe_buckets(const Sequential& model, const std::vector<GradBucket>& buckets) {
  const auto& params = model.parameters();
  std::ostringstream out;
  out << std::fixed;
  for (std::size_t b = 0; b < buckets.size(); ++b) {
    const GradBucket& g = buckets[b];
    const double mib = g.mib();
    out << (b == 0 ? "" : "\n") << "  bucket " << b << ": " << std::setprecision(mib < 0.1 ? 3 : 2)
        << mib << " MiB, " << params[static_cast<std::size_t>(g.last_param)]->name;
    if (g.first_param != g.last_param) {
      out << " .. " << params[static_cast<std::size_t>(g.first_param)]->name;
    }
    out << " (parameters " << g.first_param << ".." << g.last_param << ")";
  }
  return out.str();
}

DataParallel::DataParallel(Sequential& model, comm::Communicator& comm, DataParallelOptions options)
    : model_(model), comm_(comm), options_(options) {
  DPT_CHECK(options.bucket_mb > 0.0 && options.first_bucket_mb > 0.0,
            "data parallel: bucket sizes must be > 0 MB, got bucket-mb ", options.bucket_mb,
            " and first bucket ", options.first_bucket_mb);
  const auto& params = model.parameters();
  const int n = static_cast<int>(params.size());
  DPT_CHECK(n > 0, "data parallel: the model has no parameters");
  // Parameters sit in the flat buffer in forward order, so walking them backwards and cutting
  // whenever the cap is reached yields contiguous ranges: no gradient is ever copied.
  bucket_of_param_.assign(static_cast<std::size_t>(n), -1);
  DPT_CHECK(options.min_buckets >= 1 && options.min_bucket_elements >= 0,
            "data parallel: min_buckets must be >= 1 and min_bucket_elements >= 0");
  // With min_buckets 1 this is at least the whole buffer: no limit.
  const std::int64_t share_cap = std::max<std::int64_t>(
      (64 << 10) / static_cast<std::int64_t>(sizeof(float)),
      model.flat_grads().numel() / options.min_buckets);
  auto cap_elements = [&](std::size_t bucket) {
    const double mb = bucket == 0 ? first_cap_mb(options) : options.bucket_mb;
    return std::min(share_cap, static_cast<std::int64_t>(mb * 1024.0 * 1024.0 / sizeof(float)));
  };
  GradBucket current;
  current.last_param = n - 1;
  // A parameter's span runs to the next one's start: buckets then also cover the alignment gaps
  // (Note [Parameter alignment] in sequential.cpp) and stay contiguous.
  std::int64_t span_end = model.flat_grads().numel();
  for (int i = n - 1; i >= 0; --i) {
    const std::int64_t offset = model.parameter_offsets()[static_cast<std::size_t>(i)];
    const std::int64_t span = span_end - offset;
    span_end = offset;
    if (current.count > 0 && current.count >= options.min_bucket_elements &&
        current.count + span > cap_elements(buckets_.size())) {
      buckets_.push_back(current);
      current = GradBucket{};
      current.last_param = i;
    }
    current.offset = offset;
    current.first_param = i;
    current.count += span;
    bucket_of_param_[static_cast<std::size_t>(i)] = static_cast<int>(buckets_.size());
  }
  buckets_.push_back(current);
  if (options.exact_total_shards > 0) set_up_exact();
  set_up_shards();
  if (options.reduce_bf16) {
    DPT_CHECK(options.exact_total_shards == 0 && !options.shard_optimizer && options.cast_context,
              "--grad-reduce bf16: not with exact mode (its sums are fixed point) or --zero 1, and "
              "it needs the training context");
    bf16_grads_ =
        Tensor::empty({model.flat_grads().numel()}, DType::kBF16, model.flat_grads().device());
  }
  pending_.assign(buckets_.size(), 0);
  work_.resize(buckets_.size());
  gather_work_.resize(buckets_.size());
  model_.set_grad_ready_hook([this](int param_index) { on_grad_ready(param_index); });
  if (sharded()) {
    model_.set_params_needed_hook([this](int first, int last) { on_params_needed(first, last); });
  }
}

void DataParallel::set_up_shards() {
  const std::int64_t total = model_.flat_grads().numel();
  if (!sharded()) {
    shard_starts_ = {0, total};
    return;
  }
  const std::int64_t n = comm_.world_size();
  constexpr std::int64_t kAlign = kernels::kSumSquaresChunk;
  const std::int64_t per_rank = ((total + n - 1) / n + kAlign - 1) / kAlign * kAlign;
  for (std::int64_t r = 0; r <= n; ++r) shard_starts_.push_back(std::min(total, r * per_rank));
  shard_starts_.back() = total;
  for (const GradBucket& b : buckets_) {
    std::vector<std::int64_t> counts;
    for (std::int64_t r = 0; r < n; ++r) {
      const auto i = static_cast<std::size_t>(r);
      const std::int64_t from = std::clamp(shard_starts_[i], b.offset, b.offset + b.count);
      const std::int64_t to = std::clamp(shard_starts_[i + 1], b.offset, b.offset + b.count);
      counts.push_back(to - from);
    }
    bucket_shard_counts_.push_back(std::move(counts));
  }
}

std::vector<std::int64_t> DataParallel::shard_counts() const {
  std::vector<std::int64_t> counts;
  for (std::size_t r = 0; r + 1 < shard_starts_.size(); ++r) {
    counts.push_back(shard_starts_[r + 1] - shard_starts_[r]);
  }
  return counts;
}

Tensor DataParallel::owned_range(const Tensor& flat) const {
  const auto r = static_cast<std::size_t>(sharded() ? comm_.rank() : 0);
  return Tensor::view_of(flat, shard_starts_[r], {shard_starts_[r + 1] - shard_starts_[r]});
}

double DataParallel::gradient_sum_squares(const Context& ctx) {
  const Tensor& grads = model_.flat_grads();
  if (!sharded()) return kernels::sum_squares(ctx, grads);
  // Note [Sharded optimizer]: every chunk is summed by its owner, the others hold zero there, so
  // the all-reduce adds each chunk sum to zeros only (exact), and the chunk sums are then added
  // in index order, as sum_squares adds them.
  const std::int64_t chunk = kernels::kSumSquaresChunk;
  std::vector<double> all(static_cast<std::size_t>((grads.numel() + chunk - 1) / chunk), 0.0);
  std::vector<double> mine;
  kernels::sum_squares_chunks(ctx, owned_range(grads), mine);
  const std::int64_t first = shard_starts_[static_cast<std::size_t>(comm_.rank())] / chunk;
  std::copy(mine.begin(), mine.end(), all.begin() + first);
  const comm::LabelScope label(comm_, {"gradient norm", -1, step_});
  comm_.all_reduce(all.data(), static_cast<std::int64_t>(all.size()), comm::ReduceOp::kSum);
  double total = 0.0;
  for (const double c : all) total += c;
  return total;
}

void DataParallel::parameters_updated() {
  if (sharded() && comm_.world_size() > 1) gather_pending_ = true;
}

void DataParallel::launch_gathers() {
  gather_pending_ = false;
  float* params = model_.flat_params().data<float>();
  // Forward order: the last bucket holds the first parameters.
  for (std::size_t b = buckets_.size(); b-- > 0;) {
    const comm::LabelScope label(comm_,
                                 {"parameter all-gather", static_cast<std::int64_t>(b), step_});
    gather_work_[b] = comm_.all_gather_async(params + buckets_[b].offset, bucket_shard_counts_[b]);
  }
}

void DataParallel::on_params_needed(int first_param, int last_param) {
  if (gather_pending_) launch_gathers();
  const int first_bucket = bucket_of_param_[static_cast<std::size_t>(last_param)];
  const int last_bucket = bucket_of_param_[static_cast<std::size_t>(first_param)];
  for (int b = first_bucket; b <= last_bucket; ++b) {
    std::unique_ptr<comm::Work>& work = gather_work_[static_cast<std::size_t>(b)];
    if (work == nullptr) continue;
    Stopwatch waited;
    work->wait();
    gather_wait_ms_ += waited.elapsed_ms();
    work.reset();
  }
}

void DataParallel::gather_parameters() {
  if (!sharded()) return;
  if (gather_pending_) launch_gathers();
  for (std::unique_ptr<comm::Work>& work : gather_work_) {
    if (work == nullptr) continue;
    work->wait();
    work.reset();
  }
}

double DataParallel::take_gather_wait_ms() {
  const double ms = gather_wait_ms_;
  gather_wait_ms_ = 0.0;
  return ms;
}

void DataParallel::set_up_exact() {
  DPT_CHECK(options_.exact_local_shards >= 1 && options_.exact_chunk >= 1 &&
                options_.exact_total_shards % options_.exact_local_shards == 0 &&
                options_.exact_total_shards / options_.exact_local_shards == comm_.world_size(),
            "data parallel: exact mode needs the same number of shards on each of the ",
            comm_.world_size(), " ranks, got ", options_.exact_local_shards, " local of ",
            options_.exact_total_shards, " in all");
  Tensor& own = model_.flat_grads();
  for (int s = 0; s + 1 < options_.exact_local_shards; ++s) {
    shard_grads_.push_back(Tensor::zeros({own.numel()}, DType::kF32, own.device()));
  }
  shard_grads_.push_back(own);
  const std::vector<std::int64_t>& param_start = model_.parameter_offsets();
  for (const GradBucket& b : buckets_) {
    std::vector<std::int64_t> starts;
    for (int i = b.first_param; i <= b.last_param; ++i) {
      const auto p = static_cast<std::size_t>(i);
      // A parameter's span runs to the next one's start (its alignment gap included).
      const std::int64_t end = p + 1 < param_start.size() ? param_start[p + 1] : own.numel();
      for (std::int64_t at = param_start[p]; at < end; at += options_.exact_chunk) {
        starts.push_back(at - b.offset);
      }
    }
    chunk_starts_.push_back(std::move(starts));
  }
}

// Note [Abort on unwind]
// ~~~~~~~~~~~~~~~~~~~~~~
// When an error unwinds the stack of a rank (a failed kernel, a peer's all-reduce that timed out,
// a bad file), destructors run before main's catch can call comm::abort_all(). A collective still
// pending then waits in its destructor for peers that may never issue theirs (an NCCL one polls
// up to --collective-timeout, 300 s by default, then finalizing the communicator waits again): a
// failing rank would keep the whole job alive for ten minutes or more. So a DataParallel destroyed
// by unwinding with collectives pending aborts the communicator first (Communicator::abort:
// ncclCommAbort), and the pending Works then end at once; NcclCommunicator's own destructor does
// the same when unwinding. Outside unwinding nothing changes: pending collectives are waited for.
DataParallel::~DataParallel() {
  model_.set_grad_ready_hook(nullptr);
  model_.set_params_needed_hook(nullptr);
  const auto in_flight = [](const auto& works) {
    return std::any_of(works.begin(), works.end(), [](const auto& w) { return w != nullptr; });
  };
  const bool pending = in_flight(work_) || in_flight(gather_work_);
  if (pending && std::uncaught_exceptions() > uncaught_at_construction_) comm_.abort();
  // Work destructors wait: buckets in flight must not outlive the buffers they reduce or gather.
  work_.clear();
  gather_work_.clear();
}

void DataParallel::broadcast_parameters() {
  const comm::LabelScope label(comm_, {"parameter broadcast", -1, -1});
  Tensor& params = model_.flat_params();
  comm_.broadcast(params.raw_data(), static_cast<std::int64_t>(params.size_bytes()), 0);
}

void DataParallel::prepare_backward(bool reduce, std::int64_t step, int shard) {
  DPT_CHECK(!reducing_, "data parallel: prepare_backward() twice without finish()");
  if (exact()) {
    DPT_CHECK(shard >= 0 && shard < options_.exact_local_shards &&
                  reduce == (shard + 1 == options_.exact_local_shards),
              "data parallel: exact mode runs shards 0..", options_.exact_local_shards - 1,
              " and reduces after the last; got shard ", shard, " with reduce = ", reduce);
    model_.use_gradient_buffer(shard_grads_[static_cast<std::size_t>(shard)]);
  }
  for (std::size_t b = 0; b < work_.size(); ++b) {
    DPT_CHECK(work_[b] == nullptr, "data parallel: bucket ", b,
              " of the previous step is still pending: call complete() after finish()");
  }
  reducing_ = reduce;
  step_ = step;
  if (!reduce) return;
  for (std::size_t b = 0; b < buckets_.size(); ++b) {
    pending_[b] = buckets_[b].last_param - buckets_[b].first_param + 1;
  }
  next_bucket_ = 0;
  records_.assign(buckets_.size(), BucketRecord{});
}

void DataParallel::on_grad_ready(int param_index) {
  if (!reducing_) return;
  const int bucket = bucket_of_param_[static_cast<std::size_t>(param_index)];
  DPT_ASSERT(pending_[static_cast<std::size_t>(bucket)] > 0);
  --pending_[static_cast<std::size_t>(bucket)];
  if (options_.overlap) launch_ready_buckets();
}

void DataParallel::launch_ready_buckets() {
  while (next_bucket_ < buckets_.size() && pending_[next_bucket_] == 0) launch(next_bucket_++);
}

void DataParallel::launch(std::size_t bucket) {
  const GradBucket& b = buckets_[bucket];
  float* data = model_.flat_grads().data<float>() + b.offset;
  records_[bucket].bucket = static_cast<int>(bucket);
  records_[bucket].launched = steady_seconds();
  if (const fault::Action a = fault::at("allreduce", step_);
      a == fault::Action::kNan || a == fault::Action::kInf) {
    Tensor::view_of(model_.flat_grads(), b.offset, {1}).fill(fault::poison_value(a));
  }
  if (launch_hook_) launch_hook_(bucket);
  const comm::LabelScope label(comm_,
                               {"gradient bucket", static_cast<std::int64_t>(bucket), step_});
  if (bf16_grads_.defined()) {
    Tensor narrow = Tensor::view_of(bf16_grads_, b.offset, {b.count});
    kernels::cast(*options_.cast_context, Tensor::view_of(model_.flat_grads(), b.offset, {b.count}),
                  narrow);
    work_[bucket] = comm_.all_reduce_bf16_async(narrow.data<BFloat16>(), b.count);
    return;
  }
  if (!exact()) {
    work_[bucket] = sharded() ? comm_.reduce_scatter_async(data, bucket_shard_counts_[bucket],
                                                           comm::ReduceOp::kSum)
                              : comm_.all_reduce_async(data, b.count, comm::ReduceOp::kSum);
    return;
  }
  comm::ExactSumBucket sum;
  for (const Tensor& shard : shard_grads_) sum.shards.push_back(shard.data<float>() + b.offset);
  sum.out = data;
  sum.count = b.count;
  sum.chunk_starts = chunk_starts_[bucket];
  sum.total_shards = options_.exact_total_shards;
  if (sharded()) sum.owned_counts = bucket_shard_counts_[bucket];
  work_[bucket] = comm_.exact_sum_async(std::move(sum));
}

// Note [bf16 gradient reduction]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// --grad-reduce bf16 (as PyTorch DDP's bf16 compression hook, DeepSpeed's communication_data_type):
// launch() casts the bucket's gradients to bf16 (round to nearest even) and all-reduces the bf16
// copy, half the bytes; finish() widens the result back into the f32 bucket, on the compute stream
// after its wait on a GPU. Each rank's gradient and every partial sum are rounded to bf16 (Note
// [bf16 all-reduce] in comm/mpi), so the reduced gradient carries about 3 significant digits;
// the optimizer, its state and the parameters stay f32. On one rank the gradients are rounded
// the same way, so a run's numerics do not change with its world size more than fp32's do.
void DataParallel::widen_bf16(std::size_t bucket) {
  if (!bf16_grads_.defined()) return;
  const GradBucket& b = buckets_[bucket];
  Tensor wide = Tensor::view_of(model_.flat_grads(), b.offset, {b.count});
  kernels::cast(*options_.cast_context, Tensor::view_of(bf16_grads_, b.offset, {b.count}), wide);
}

// Note [Device-side finish]
// ~~~~~~~~~~~~~~~~~~~~~~~~~
// On a GPU the optimizer runs on the compute stream, so it needs the reduced gradients on the
// device, not on the host: finish() makes the compute stream wait for each bucket's NCCL
// completion event (Work::order_on_device) and returns at once, and the optimizer's kernels are
// queued behind those waits while the all-reduces still run. A host wait there would leave the GPU
// idle from the last all-reduce's end until the host had queued the optimizer. The host checks
// the collectives later, in complete(), where a failure or the NCCL timeout surfaces as before.
// Host collectives (MPI) have no device-side completion and are waited for in finish().
double DataParallel::finish() {
  DPT_CHECK(reducing_, "data parallel: finish() without prepare_backward(true)");
  Stopwatch waited;
  // Without overlap nothing was launched during backward; with it, a bucket can only still be
  // pending if backward did not report one of its gradients, which is a bug.
  for (std::size_t b = next_bucket_; b < buckets_.size(); ++b) {
    DPT_CHECK(pending_[b] == 0, "data parallel: bucket ", b, " still waits for ", pending_[b],
              " gradient(s) after backward (parameters ", buckets_[b].first_param, "..",
              buckets_[b].last_param, ")");
  }
  while (next_bucket_ < buckets_.size()) launch(next_bucket_++);
  // Waiting in bucket order matches the order the communication thread runs them.
  for (std::size_t b = 0; b < buckets_.size(); ++b) {
    bool on_device = false;
    try {
      on_device = work_[b]->order_on_device();
    } catch (const Error& e) {
      fail_bucket(b, e);
    }
    if (!on_device) wait_bucket(b);
    widen_bf16(b);
  }
  reducing_ = false;
  return waited.elapsed_ms();
}

void DataParallel::complete() {
  DPT_CHECK(!reducing_, "data parallel: complete() before finish()");
  for (std::size_t b = 0; b < work_.size(); ++b) {
    if (work_[b] != nullptr) wait_bucket(b);
  }
}

void DataParallel::wait_bucket(std::size_t b) {
  try {
    work_[b]->wait();
  } catch (const Error& e) {
    fail_bucket(b, e);
  }
  records_[b].started = work_[b]->start_time();
  records_[b].finished = work_[b]->end_time();
  records_[b].duration_ms = work_[b]->duration_ms();
  work_[b].reset();
}

void DataParallel::fail_bucket(std::size_t b, const Error& e) {
  reducing_ = false;
  const GradBucket& bucket = buckets_[b];
  detail::throw_error(e.kind(), "work->wait()",
                      detail::str("gradient all-reduce of bucket ", b, " (", bucket.count,
                                  " floats, parameters ", bucket.first_param, "..",
                                  bucket.last_param, ") at step ", step_, " failed: ",
                                  e.message()),
                      __FILE__, __LINE__);
}

}  // namespace dpt::nn
