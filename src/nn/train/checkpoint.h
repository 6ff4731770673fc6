// SPDX-License-Identifier: MIT
// How a training run maps onto a checkpoint (src/runtime/io/checkpoint_file.h) and back: the
// model's parameters under their PyTorch names, the optimizer's slots per parameter, the position
// (step, epoch) and the resolved configuration.
#pragma once

#include <string>
#include <vector>

#include "nn/models.h"
#include "nn/optim/optimizer.h"
#include "nn/sequential.h"
#include "nn/train/config.h"
#include "runtime/host_snapshot.h"
#include "runtime/io/checkpoint_file.h"

namespace dpt::nn {

// Where training stands after `step` optimizer steps.
struct TrainPosition {
  std::int64_t step = 0;   // optimizer steps taken
  std::int64_t epoch = 0;  // epoch of the next step
};

// A checkpoint's contents in host memory and what orders their copies (runtime/host_snapshot.h):
// read the tensors after fence.wait_on_host(); overwrite parameters or optimizer state after
// fence.order_compute_after().
struct CheckpointSnapshot {
  io::CheckpointState state;
  SnapshotFence fence;
};

// Everything a resumed run needs, copied out of the model and optimizer by `snapshotter` (the
// copies make the write independent of training that continues; on a GPU they are still in
// flight on return). `full_slots`, when given, holds the whole state of each of
// optimizer.slot_names() in order, laid out like the flat parameters: a sharded optimizer's slots
// gathered from every rank (its own slots hold one rank's range only). Not checked for NaN/Inf:
// the copies may not have arrived (check_checkpoint_finite, after the fence's host wait).
CheckpointSnapshot take_checkpoint_snapshot(const TrainConfig& config,
                                            const std::vector<LayerSpec>& layers, Sequential& model,
                                            Optimizer& optimizer, double next_lr,
                                            const TrainPosition& position, int world_size,
                                            HostSnapshotter& snapshotter,
                                            const std::vector<Tensor>& full_slots = {});

// The same, complete on return: the copies have arrived and sources may be overwritten.
// check_finite: see check_checkpoint_finite.
io::CheckpointState capture_checkpoint(const TrainConfig& config,
                                       const std::vector<LayerSpec>& layers, Sequential& model,
                                       Optimizer& optimizer, double next_lr,
                                       const TrainPosition& position, int world_size,
                                       const std::vector<Tensor>& full_slots = {},
                                       bool check_finite = true);

// Throws, naming the step and the tensor, when `state` holds a NaN or Inf: such a checkpoint is
// never written. capture_checkpoint runs it unless check_finite is false; the trainer runs it
// after a snapshot's host wait, and a background writer (CheckpointWriter) on its own thread, so
// that training does not wait for it.
void check_checkpoint_finite(const io::CheckpointState& state);

// Checks that `state` (read from `path`) fits `model` and, when given, `optimizer`: the same
// parameter names and shapes, the same optimizer kind and slots, each slot shaped like its
// parameter. Only when everything fits is anything copied in, so a mismatch never leaves a
// half-loaded model. Errors name the path, the entry, what was expected and what was found.
void restore_checkpoint(const io::CheckpointState& state, const std::string& path,
                        Sequential& model, Optimizer* optimizer);

// The layer list as JSON ([{"type": "conv2d", "in": 1, "out": 32, ...}, ...]): stored with the
// model so that other tools (examples/load_checkpoint_pytorch.py) can rebuild it.
std::string layers_to_json(const std::vector<LayerSpec>& layers);

// The configuration stored in a checkpoint, parsed and validated.
TrainConfig config_of_checkpoint(const io::CheckpointState& state, const std::string& path);

// The layers a configuration trains (a reference model or the custom list).
std::vector<LayerSpec> layers_of(const TrainConfig& config);

}  // namespace dpt::nn
