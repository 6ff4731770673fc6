// SPDX-License-Identifier: MIT
// DataParallel: keeps a model's gradients identical across ranks. Gradients already live in one
// flat buffer (Sequential); buckets are contiguous ranges of it, filled in reverse parameter order
// (the order backward produces them), and each bucket's all-reduce starts on the communicator's
// thread as soon as its last gradient is written, while backward goes on with earlier layers.
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "runtime/error.h"
#include "nn/sequential.h"

namespace dpt::nn {

// How the flat gradient buffer is cut into buckets. The defaults cut exactly at the caps: walking
// the parameters backwards, a bucket closes before a parameter that would take it past its cap (a
// parameter larger than the cap is a bucket of its own). automatic_layout() is what `train` uses
// when --bucket-mb is not given.
struct DataParallelOptions {
  double bucket_mb = 25.0;       // cap of each bucket (MiB of float gradients)
  double first_bucket_mb = 1.0;  // the first bucket (last layers) is cut at min(this, bucket_mb),
                                 // so that communication starts early
  bool overlap = true;           // false: every all-reduce starts after backward (for comparison)
  // Every cap is also at most 1/min_buckets of all gradients (not below 64 KiB). 1: no limit.
  int min_buckets = 1;
  // A bucket holding fewer elements than this (16 KiB: a bias) is not closed on its own: it would
  // cost an MPI call and become ready no earlier than the weight written with it. 0: no limit.
  std::int64_t min_bucket_elements = 4096;
  // Exact mode (Note [Exact gradient sum] in runtime/exact_sum.cpp): > 0 is the number of
  // micro-shards of a step over all ranks; each of this rank's local_shards shards writes a
  // gradient buffer of its own (Note [Shard gradients]) and every bucket is summed in fixed point
  // over all shards, so the result does not depend on how shards are spread over ranks. 0: a
  // float all-reduce of the locally accumulated gradients.
  std::int64_t exact_total_shards = 0;
  int exact_local_shards = 1;
  // Values sharing one fixed-point exponent: Note [Exact sum chunks].
  std::int64_t exact_chunk = 256;
  // ZeRO stage 1 (Note [Sharded optimizer]): each rank owns a contiguous range of the flat
  // buffers, receives the reduced gradients of that range only (a reduce-scatter per bucket) and
  // all-gathers the parameters it updated.
  bool shard_optimizer = false;
  // --grad-reduce bf16 (Note [bf16 gradient reduction] in data_parallel.cpp): each bucket is cast
  // to bf16 on `cast_context` (the training context), all-reduced as bf16 and widened back. Not
  // with exact mode or a sharded optimizer.
  bool reduce_bf16 = false;
  const Context* cast_context = nullptr;

  // 25 MiB buckets, but a small model (cnn: 350 KB) is still split into about four, whose
  // all-reduces overlap backward, instead of one that can only start when backward has finished.
  static DataParallelOptions automatic_layout() {
    DataParallelOptions o;
    o.min_buckets = 4;
    return o;
  }
};

// Note [Sharded optimizer]
// ~~~~~~~~~~~~~~~~~~~~~~~~
// --zero 1 (ZeRO stage 1, as DeepSpeed and PyTorch's ZeroRedundancyOptimizer): rank r of N owns
// the range [starts[r], starts[r + 1]) of the flat parameter and gradient buffers, ceil(P / N)
// rounded up to a multiple of kernels::kSumSquaresChunk elements each (the last shorter, and any
// N allowed: trailing ranks may own nothing), and keeps optimizer state for that range only.
// A step then is:
//   1. backward launches, for each bucket as today, a reduce-scatter instead of an all-reduce:
//      each rank receives the sum of the part of the bucket inside its own range;
//   2. the optimizer updates the owned range (the update is elementwise: the same bits as the
//      unsharded optimizer on those elements);
//   3. the updated parameters are all-gathered, bucket by bucket in forward order, launched when
//      the next forward starts; each layer waits only for the buckets holding its parameters
//      (Sequential's params-needed hook), so the gather overlaps the forward of earlier layers.
// A reduce-scatter and an all-gather move the bytes of one all-reduce. The gradient norm for
// clipping is the sum of per-chunk sums of squares in index order (gradient_sum_squares): chunk
// boundaries never cross a shard boundary, so every chunk is summed by one rank and one small
// all-reduce of the chunk sums (zeros elsewhere: exact) gives sum_squares of the whole reduced
// gradient bit for bit. Anything else that reads the parameters between steps (evaluation,
// checkpoints, the parameter check) calls gather_parameters() first. In exact mode each bucket's
// exact sum leaves out its float all-gather (ExactSumBucket::owned_counts): a rank converts and
// keeps its own range only, and the parameter all-gather takes the all-gather's place; the
// same bits as unsharded exact mode, at the bytes of an exact sum.

// A contiguous range of the flat gradient buffer holding whole parameters.
struct GradBucket {
  std::int64_t offset = 0;   // first element in the flat gradient buffer
  std::int64_t count = 0;    // elements
  int first_param = 0;       // parameter indices [first_param, last_param]
  int last_param = 0;

  double mib() const { return static_cast<double>(count) * sizeof(float) / (1024.0 * 1024.0); }
};

// When each bucket's all-reduce ran, for overlap checks and the timeline (steady-clock seconds).
struct BucketRecord {
  int bucket = 0;
  double launched = 0.0;  // handed to the communicator
  double started = 0.0;   // began executing (on the communication thread; on a GPU, enqueued)
  double finished = 0.0;  // seen complete by the host
  double duration_ms = 0.0;  // where it ran: the communication thread, or the GPU's events
};

class DataParallel {
 public:
  DataParallel(Sequential& model, comm::Communicator& comm, DataParallelOptions options = {});
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;
  ~DataParallel();

  // Makes every rank's parameters equal to rank 0's.
  void broadcast_parameters();
  // Call before each backward. Only a backward with reduce = true (the last micro-batch of a
  // step) launches all-reduces; the others just accumulate locally. In exact mode `shard` (0 ..
  // exact_local_shards - 1, in order) selects the gradient buffer the backward writes, and the
  // last shard's backward reduces.
  // `step` names the step in errors (a failed or timed-out all-reduce).
  void prepare_backward(bool reduce, std::int64_t step = -1, int shard = 0);
  bool exact() const { return options_.exact_total_shards > 0; }
  // Launches, in order, any bucket not yet launched, then makes what comes next see the reduced
  // gradients: on the host, by waiting for every bucket; on a GPU, by making the compute stream
  // wait for each bucket's completion event, without blocking the host (Note [Device-side
  // finish]). Kernels queued afterwards (the optimizer) read the sum over all ranks. Returns the
  // milliseconds the host spent waiting.
  double finish();
  // Waits on the host for the buckets finish() left to the device, reporting a failure or timeout
  // of any of them (with its bucket and step), and fills records(). Call once per step after
  // finish() and before the host reads anything the step computed (the loss): a host read that
  // waits on a collective which never completes would hang without the timeout. Nothing to do
  // after a host-side finish().
  void complete();

  // Called by launch() for each bucket right before its all-reduce starts, when backward has
  // just written it (so it is still in cache): the local non-finite check (nn/train/nonfinite.h).
  void set_launch_hook(std::function<void(std::size_t bucket)> hook) {
    launch_hook_ = std::move(hook);
  }
  // The gradient buffers the all-reduces read: the model's own, or in exact mode one per local
  // shard (Note [Shard gradients]), the model's own last.
  std::vector<Tensor> local_gradients() const {
    return exact() ? shard_grads_ : std::vector<Tensor>{model_.flat_grads()};
  }

  const DataParallelOptions& options() const { return options_; }
  const std::vector<GradBucket>& buckets() const { return buckets_; }
  // Records of the last finished step, in bucket order.
  const std::vector<BucketRecord>& records() const { return records_; }

  // ---- sharded optimizer (Note [Sharded optimizer]) ----
  bool sharded() const { return options_.shard_optimizer; }
  // Where each rank's range starts (world size + 1 entries, the last the buffers' size); one
  // range of the whole buffers when not sharded.
  const std::vector<std::int64_t>& shard_starts() const { return shard_starts_; }
  // Each rank's range length (the counts of gather and scatter).
  std::vector<std::int64_t> shard_counts() const;
  // This rank's range of a flat buffer laid out like the parameters (params, gradients).
  Tensor owned_range(const Tensor& flat) const;
  // The sum of squares of the reduced gradients of the whole model (for the global norm), the
  // same bits whether sharded or not; collective when sharded. Call after finish().
  double gradient_sum_squares(const Context& ctx);
  // After the optimizer updated this rank's range: the parameters of other ranks' ranges are
  // stale until gathered (launched by the next forward, or by gather_parameters()).
  void parameters_updated();
  // Launches what is not yet launched of the parameter all-gather and waits for all of it.
  // Collective: every rank calls it at the same point. Nothing to do when nothing is pending.
  void gather_parameters();
  // Milliseconds forward waited for parameter all-gathers since the last call.
  double take_gather_wait_ms();
 private:
  void set_up_exact();
  void set_up_shards();
  void on_grad_ready(int param_index);
  // Sequential's params-needed hook: waits for the all-gathers holding [first, last].
  void on_params_needed(int first_param, int last_param);
  void launch_gathers();
  void launch_ready_buckets();
  void launch(std::size_t bucket);
  // Waits for bucket b's all-reduce on the host and records it; failures go to fail_bucket.
  void wait_bucket(std::size_t b);
  // --grad-reduce bf16: the reduced bf16 copy of `bucket` back into the f32 gradients.
  void widen_bf16(std::size_t bucket);
  // Rethrows e with the bucket and the step.
  [[noreturn]] void fail_bucket(std::size_t b, const Error& e);

  Sequential& model_;
  comm::Communicator& comm_;
  DataParallelOptions options_;
  std::vector<GradBucket> buckets_;
  std::vector<int> bucket_of_param_;
  std::vector<int> pending_;            // gradients not yet ready, per bucket
  std::vector<std::unique_ptr<comm::Work>> work_;
  std::vector<BucketRecord> records_;
  // Exact mode: one gradient buffer per local shard (the last is the model's own, which receives
  // the sums) and each bucket's chunk starts, relative to the bucket.
  std::vector<Tensor> shard_grads_;
  Tensor bf16_grads_;  // --grad-reduce bf16: the buckets' bf16 copies, laid out as flat_grads()
  std::vector<std::vector<std::int64_t>> chunk_starts_;
  std::function<void(std::size_t bucket)> launch_hook_;
  // Sharded optimizer: each rank's range, and each bucket's part in each range.
  std::vector<std::int64_t> shard_starts_;
  std::vector<std::vector<std::int64_t>> bucket_shard_counts_;
  std::vector<std::unique_ptr<comm::Work>> gather_work_;  // per bucket, while in flight
  bool gather_pending_ = false;   // parameters updated, their all-gather not yet launched
  double gather_wait_ms_ = 0.0;
  std::size_t next_bucket_ = 0;         // Note [Gradient bucket order]
  bool reducing_ = false;
  std::int64_t step_ = -1;
  // std::uncaught_exceptions() when constructed: Note [Abort on unwind].
  int uncaught_at_construction_ = std::uncaught_exceptions();
};

// The rule `options` cut the buckets by, for a start-up log ("caps 25 MiB, the first 1 MiB, ...").
std::string describe_layout_rule(const DataParallelOptions& options);
// The layout for a start-up log: one line per bucket (MiB, parameter names and indices).
std::string describe_buckets(const Sequential& model, const std::vector<GradBucket>& buckets);

// Steady-clock seconds, the clock of comm::Work times.
double steady_seconds();

}  // namespace dpt::nn
