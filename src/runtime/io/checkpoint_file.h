// SPDX-License-Identifier: MIT
// One checkpoint file (docs/formats.md, "Checkpoint files"): what it holds in memory, and its
// HDF5 writer and verifying reader. Where the file goes and how it becomes visible (tmp, fsync,
// rename, `latest`) is checkpoint_dir.h's job; how model and optimizer map onto it is
// src/nn/train/checkpoint.h's.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "runtime/tensor.h"

namespace dpt::io {

inline constexpr const char* kCheckpointFormat = "dptrain-checkpoint";
// Version 1: the layout of docs/formats.md. A reader refuses newer versions.
inline constexpr std::int64_t kCheckpointFormatVersion = 1;
// A model alone (`train export`): the root attributes and /model of a checkpoint, no optimizer.
inline constexpr const char* kModelFormat = "dptrain-model";

// A float32 tensor stored under a name (a parameter, or "<parameter>/<slot>").
struct NamedTensor {
  std::string name;
  Tensor value;
};

struct CheckpointState {
  // ---- root attributes
  std::int64_t step = 0;          // optimizer steps taken; training resumes at this step
  std::int64_t epoch = 0;         // epoch of the next step
  std::int64_t samples_seen = 0;  // step * global_batch
  std::int64_t world_size = 1;    // of the run that wrote it (informative: resume may change it)
  std::int64_t global_batch = 0;
  std::uint64_t seed = 0;  // with `step`, the whole RNG state: randomness is counter-based
  std::string config;      // the resolved configuration, TOML text
  // ---- /model: parameters with PyTorch names and shapes; `layers` (JSON) describes the model
  std::string model_layers;
  std::vector<NamedTensor> model;
  // A language model's vocabulary (attributes of /model, present only then): tokenizer "char" |
  // "byte" and the entries in their stored form (runtime/io/vocabulary.h), so that `train sample`
  // needs no dataset. Empty for image models.
  std::string tokenizer;
  std::vector<std::string> vocabulary;
  // ---- /optimizer
  std::string optimizer_kind;        // "sgd" | "adamw"
  std::int64_t optimizer_steps = 0;  // the optimizer's own step count (AdamW bias correction)
  double lr = 0.0;                   // learning rate of the next step
  std::string lr_schedule;           // constant | cosine | step (the position is `step`)
  std::vector<std::pair<std::string, double>> hyper;  // momentum, beta1, weight_decay, ...
  std::vector<std::string> slot_names;                // e.g. exp_avg, exp_avg_sq
  std::vector<NamedTensor> slots;  // "<parameter>/<slot>", stored as /optimizer/<param>/<slot>
};

// Writes `state` to `path` (created or truncated): HDF5 1.8+ format (checksummed metadata),
// every dataset with the Fletcher32 filter. The file is built in memory and written with plain
// POSIX writes (not fsynced: the caller decides). Throws IoError naming the path and the system's
// reason (disk full, file too large); a partly written file is removed.
void write_checkpoint_file(const std::string& path, const CheckpointState& state);

// Reads a whole checkpoint and verifies it: format and version, every required attribute with
// its type, every dataset float32 and intact (Fletcher32). Nothing outside the returned value is
// touched, so a failure leaves no half-loaded model. IoError names the file, the entry, what was
// expected and what was found.
CheckpointState read_checkpoint_file(const std::string& path);

// Reads the model part (root attributes and /model) of a checkpoint or of an exported model file,
// verified like read_checkpoint_file; the optimizer fields stay empty.
CheckpointState read_model_file(const std::string& path);

// Writes the model part of `state` as a "dptrain-model" file (as <path>.tmp, renamed when
// complete).
void write_model_file(const std::string& path, const CheckpointState& state);

// Writes float32 datasets (names may contain '/': groups are created) to a new HDF5 file, as
// <path>.tmp renamed when complete; e.g. the logits of `train eval --logits`.
void write_tensor_file(const std::string& path, const std::vector<NamedTensor>& tensors);

// True when `path` opens as HDF5 and its root says format = "dptrain-checkpoint" (any version).
// Never throws: used to decide whether a file may be deleted.
bool is_checkpoint_file(const std::string& path) noexcept;

}  // namespace dpt::io
