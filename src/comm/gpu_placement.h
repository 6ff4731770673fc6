// SPDX-License-Identifier: MIT
// The one-rank-per-GPU check of a job, by GPU identity: every rank says which node it is on and
// which physical GPU it will use, and the job stops when two ranks on one node would use the same
// GPU. Counting ranks against the GPUs one rank sees would refuse ranks that each see only their
// own GPU (SLURM --gpus-per-task=1, CUDA_VISIBLE_DEVICES set per rank).
#pragma once

#include <string>
#include <vector>

#include "comm/communicator.h"
#include "runtime/device.h"

namespace dpt::comm {

// This rank's node (gethostname) and the identity of `device` (gpu_identity; "" for the CPU).
GpuPlacement local_gpu_placement(const Device& device);
// Collective: every rank's local_gpu_placement(device), in rank order.
std::vector<GpuPlacement> gather_gpu_placements(Communicator& comm, const Device& device);
// Collective: all-gathers every rank's placement and throws the same kInvalidArgument error on
// every rank when shared_gpu_error() finds two ranks of one node on one GPU. Returns the
// placements, in rank order.
std::vector<GpuPlacement> check_one_rank_per_gpu(Communicator& comm, const Device& device);

}  // namespace dpt::comm
