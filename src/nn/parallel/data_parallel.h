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

  // 25 MiB buckets, but a small model (cnn: 350 KB) is still split into about four, whose
  // all-reduces overlap backward, instead of one that can only start when backward has finished.
  static DataParallelOptions automatic_layout() {
    DataParallelOptions o;
    o.min_buckets = 4;
    return o;
  }
};

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

 private:
  void set_up_exact();
  void on_grad_ready(int param_index);
  void launch_ready_buckets();
  void launch(std::size_t bucket);
  // Waits for bucket b's all-reduce on the host and records it; failures go to fail_bucket.
  void wait_bucket(std::size_t b);
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
  std::vector<std::vector<std::int64_t>> chunk_starts_;
  std::function<void(std::size_t bucket)> launch_hook_;
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
