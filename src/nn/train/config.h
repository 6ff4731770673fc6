// SPDX-License-Identifier: MIT
// The training configuration: every command-line flag is also a key of the TOML file given with
// --config (same name; '-' and '_' are interchangeable), and flags override the file. Unknown keys
// and out-of-range values are rejected with the key's name.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "nn/gpt.h"
#include "nn/models.h"

namespace dpt::nn {

struct TrainConfig {
  // data and model
  std::string data;                 // dataset file (HDF5)
  std::string model = "cnn";        // cnn | mlp | gpt | custom (layers from the [model] table)
  std::vector<LayerSpec> layers;    // custom model, from [model] layers = [...]
  double dropout = 0.0;             // cnn/mlp: Dropout(p) before the classifier; gpt: everywhere
  // gpt (nn/gpt.h; also keys of the [model] table): nanoGPT's CPU configuration by default
  std::int64_t n_layer = 4;
  std::int64_t n_head = 4;
  std::int64_t n_embd = 128;
  std::int64_t block_size = 64;     // context: each training window has this many tokens
  std::int64_t vocab_size = 0;      // 0: the dataset's vocabulary size
  bool bias = false;                // biases in the gpt's Linear and LayerNorm layers
  std::int64_t train_samples = 0;   // > 0: use only the first N training samples
  std::int64_t test_samples = 0;    // > 0: evaluate on the first N test samples
  std::string augment = "none";     // none | flip (random horizontal flip, keyed by sample)
  // schedule of work
  std::int64_t epochs = 1;
  std::int64_t steps = 0;           // > 0: stop after this many optimizer steps
  std::int64_t batch_size = 128;    // global batch, samples per optimizer step
  std::int64_t micro_batch = 0;     // samples per forward/backward; 0: local batch / accumulate
  std::int64_t accumulate = 1;      // micro-batches per step on each rank (all-reduce after the last)
  // data parallel
  // Gradient bucket cap in MiB. Given: every bucket is cut at this size (the first at
  // min(1 MiB, cap)). Not given: DataParallel's automatic layout (nn/parallel/data_parallel.h).
  std::optional<double> bucket_mb;
  bool no_overlap = false;          // all-reduce after backward instead of during it
  // Exact mode (docs/design.md, Determinism): the same bits for any number of ranks and threads.
  // The global batch is cut into micro-shards of shard_size samples (0: the largest divisor of
  // batch_size up to 32), each computed on its own, and gradients are summed in fixed point.
  bool exact = false;
  std::int64_t shard_size = 0;
  // ZeRO stage: 0 every rank keeps the whole optimizer state; 1 each rank keeps (and updates)
  // 1/N of it (Note [Sharded optimizer] in nn/parallel/data_parallel.h).
  std::int64_t zero = 0;
  // Resume on a different number of ranks where the continuation cannot be bitwise (not exact
  // mode, or another shard size): refused unless this is set (then a warning).
  bool allow_inexact_resume = false;
  bool log_all_ranks = false;       // every rank prints, prefixed with its rank
  // reliability (docs/reliability.md)
  double collective_timeout = 300.0;  // seconds a collective may wait for its peers; 0: forever
  bool check_collectives = false;     // fingerprint every collective across ranks first (debug)
  std::string nonfinite = "abort";    // abort | skip: a step whose reduced gradients are not finite
  std::int64_t nonfinite_skip_limit = 10;  // skip: abort after this many skipped steps in all
  std::int64_t check_params_every = 100;   // steps between parameter-hash checks; 0: never
  // optimizer
  std::string optimizer = "adamw";  // sgd | adamw
  double lr = 1e-3;
  double momentum = 0.0;
  double dampening = 0.0;
  bool nesterov = false;
  std::optional<double> weight_decay;  // default: 0 for sgd, 0.01 for adamw (PyTorch's defaults)
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double clip_grad_norm = 0.0;      // > 0: clip the global gradient norm
  // mixed precision (Note [Mixed precision in layers], Note [Loss scaling])
  std::string precision = "fp32";  // fp32 | bf16 | fp16: the format of GEMM/convolution inputs
  double loss_scale = 65536.0;     // fp16: the first loss scale (PyTorch GradScaler's init_scale)
  std::int64_t loss_scale_growth_interval = 2000;  // fp16: steps without overflow before x2
  std::string grad_reduce = "fp32";      // fp32 | bf16: the format gradients are all-reduced in
  bool tf32 = false;  // GPU: fp32 GEMMs and convolutions may use TF32 (Context::allow_tf32)
  std::string lr_schedule = "constant";  // constant | cosine | step
  std::int64_t warmup_steps = 0;
  double min_lr = 0.0;              // cosine floor
  std::int64_t lr_step_size = 1000; // step schedule
  double lr_gamma = 0.1;            // step schedule
  // checkpoints (docs/formats.md)
  std::string checkpoint_dir;       // where rank 0 writes step-<n>.h5 and `latest`; empty: none
  std::int64_t checkpoint_every = 0;  // steps between checkpoints; 0: only at the end and on a stop
  std::int64_t keep_last = 3;       // checkpoints kept (older ones removed); 0: keep all
  bool async_checkpoint = false;    // rank 0 writes on a thread while training goes on
  std::string resume;               // "": start fresh; "auto": newest good one in checkpoint_dir
                                    // (fresh when there is none); else a checkpoint file
  // runtime
  std::uint64_t seed = 0;
  int threads = 0;                  // 0: all cores this process may use
  std::string device = "auto";      // auto | cpu | cuda | cuda:N
  std::int64_t log_every = 10;
  std::string metrics;              // JSON-lines file; empty: none
  std::string timeline;             // Chrome trace of every rank (rank 0 writes it); empty: none
  std::int64_t timeline_steps = 20; // steps recorded in the timeline, from the first
  bool eval = true;                 // evaluate on the test split after each epoch
  std::int64_t eval_every = 0;      // > 0: also every N steps
  bool quiet = false;               // no progress output

  double resolved_weight_decay() const;
  // kF32, kBF16 or kF16, from `precision`.
  DType compute_format() const;
  // Samples per forward/backward on each of `world_size` ranks (checks divisibility). In exact
  // mode: the shard size.
  std::int64_t resolved_micro_batch(int world_size) const;
  // Exact mode: samples per micro-shard, and shards per step over all ranks (batch / shard size).
  std::int64_t resolved_shard_size() const;
  std::int64_t shards_per_step() const { return batch_size / resolved_shard_size(); }
};

// Parses argv ("train [flags]") into a config: defaults, then the --config file, then flags.
// Returns nullopt when --help or --version was asked for (printed only when `print_help`, so that
// one rank of a job prints it). `command` names the program in the help ("train verify" takes
// the same flags). Throws dpt::Error on bad input.
std::optional<TrainConfig> parse_train_args(int argc, const char* const* argv,
                                            bool print_help = true,
                                            const char* command = "train");

// Loads a TOML file into `config` (keys not in the file keep their values). `origin` names the
// file in errors.
void apply_toml(const std::string& toml_text, const std::string& origin, TrainConfig& config);

// The gpt's configuration from the keys (vocab_size as given: 0 means the dataset's).
GptConfig gpt_config(const TrainConfig& config);

// Checks ranges and cross-field rules; errors name the key.
void validate(const TrainConfig& config);

// The resolved configuration as TOML text (for logs, metrics and checkpoints).
std::string to_toml(const TrainConfig& config);

}  // namespace dpt::nn
