// SPDX-License-Identifier: MIT
// Batches in epoch order, prepared on a prefetch thread while the model computes.
// Data order (DESIGN.md, Determinism): one permutation per epoch from (seed, epoch), the same on
// every rank. A global batch is positions [s*B, (s+1)*B) of that order; rank r of W takes the
// contiguous run [r*B/W, (r+1)*B/W) of it. Training drops the last partial global batch, so every
// rank runs floor(N / B) steps per epoch; evaluation keeps it (sequential order, no shuffle).
// Text datasets (DatasetKind::kTokens): a sample is a window of T tokens and N the windows per
// epoch, (tokens - 1) / T; steps, sharding and resume are the same. Training windows start at
// window_start(seed, epoch, position); evaluation window q covers tokens [q*T, q*T + T].
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "runtime/io/dataset.h"
#include "runtime/batch_uploader.h"
#include "runtime/tensor.h"

namespace dpt::io {

// The permutation of [0, n) for `epoch`: Fisher-Yates driven by Philox keyed by (seed, epoch).
std::vector<std::int64_t> epoch_permutation(std::int64_t n, std::uint64_t seed, std::int64_t epoch);

// Where the training window at `position` of `epoch`'s order starts in a split of n_tokens
// tokens with windows of block_size: uniform in [0, n_tokens - block_size - 1], drawn from
// PhiloxStream{seed, kWindow, epoch, position} (docs/formats.md). A pure function of its
// arguments, so the same on every rank, world size and batch split, and after a resume.
std::int64_t window_start(std::uint64_t seed, std::int64_t epoch, std::int64_t position,
                          std::int64_t n_tokens, std::int64_t block_size);

struct LoaderOptions {
  std::int64_t global_batch = 128;
  int rank = 0;
  int world_size = 1;
  bool shuffle = true;        // false: dataset order (evaluation)
  bool drop_last = true;      // false: the last partial batch is served too (evaluation)
  std::uint64_t seed = 0;
  std::int64_t first_epoch = 0;
  std::int64_t first_step_in_epoch = 0;  // resume inside an epoch
  std::int64_t epochs = 1;    // how many epochs to serve, from first_epoch
  int prefetch_depth = 2;     // batches prepared ahead
  // Random horizontal flip with probability 1/2. Whether the sample at position q of epoch e's
  // order is flipped is Philox(seed; augment, e, q): independent of batch split, rank and thread.
  // Images only: set on a text dataset, the loader refuses to start.
  bool augment_flip = false;
};

struct Batch {
  Tensor inputs;  // images: f32 [b, C, H, W], normalised with the dataset's mean and std;
                  // text: i32 [b, T], token ids
  Tensor labels;  // images: i32 [b]; text: i32 [b * T], the token after each input position
  std::int64_t epoch = 0;
  std::int64_t step_in_epoch = 0;
  std::int64_t first_position = 0;  // position in the epoch order of this rank's first sample
  // For a batch on a GPU: orders the compute stream after the upload's copies (BatchUploader).
  // Last, so that a batch dropped unused has its fence issue the wait before its tensors are freed.
  UploadFence ready;
};

class Loader {
 public:
  // The loader keeps a reference to `data`, which must outlive it.
  Loader(const DatasetSplit& data, LoaderOptions options);
  Loader(DatasetSplit&&, LoaderOptions) = delete;  // a temporary would die under the thread
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;
  ~Loader();  // stops and joins the prefetch thread

  // Steps per epoch under these options (identical on every rank).
  std::int64_t steps_per_epoch() const { return steps_per_epoch_; }
  // The next batch, or nullopt after the last epoch. Blocks while the prefetch thread works;
  // rethrows any error the thread hit.
  std::optional<Batch> next();
  // Milliseconds next() spent waiting for the prefetch thread since construction.
  double wait_ms() const { return wait_ms_; }

 private:
  void produce();
  Batch make_batch(const std::vector<std::int64_t>& order, std::int64_t epoch, std::int64_t step);
  // Text: fills inputs and labels of `batch` with the windows at positions [first, first + b).
  void fill_windows(Batch* batch, std::int64_t epoch, std::int64_t first, std::int64_t b) const;

  const DatasetSplit& data_;
  LoaderOptions options_;
  std::int64_t steps_per_epoch_ = 0;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Batch> ready_;
  bool finished_ = false;
  bool stop_ = false;
  std::exception_ptr error_;
  double wait_ms_ = 0.0;
  std::thread thread_;
};

}  // namespace dpt::io
