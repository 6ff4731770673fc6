// SPDX-License-Identifier: MIT
// --check-params-every: every rank hashes its parameters and optimizer state, the hashes are
// compared across ranks, and a difference (a silent desynchronisation: a flipped bit, a rank that
// computed something else) stops the job naming the first differing tensor and the ranks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "nn/optim/optimizer.h"
#include "nn/sequential.h"
#include "runtime/context.h"

namespace dpt::nn {

// One hashed tensor: a parameter, or one optimizer slot of a parameter.
struct HashedTensor {
  std::string name;  // "layers.1.weight", or "layers.1.weight (optimizer momentum_buffer)"
  Tensor value;      // a view of the flat parameters or of the slot
};

// The tensors the check hashes, parameters first, in parameter order; then the optimizer's
// slots, unless `optimizer` is null (a sharded optimizer: each rank holds a different range).
std::vector<HashedTensor> hashed_tensors(Sequential& model, Optimizer* optimizer);

// The message for per-tensor hashes that differ between ranks (hashes[rank][tensor], all ranks
// the same number of tensors); "" when they all agree. E.g. "parameters differ between ranks after
// step 7: first at layers.1.weight; rank 1 differs from rank 0 (ranks 0, 2 agree)".
std::string describe_param_difference(const std::vector<std::string>& names,
                                      const std::vector<std::vector<std::uint64_t>>& hashes,
                                      std::int64_t after_step);

class ParamCheck {
 public:
  ParamCheck(const Context& ctx, comm::Communicator& comm, Sequential& model, Optimizer* optimizer);

  // Every rank calls it at the same point, after step `after_step` (0-based, for the message).
  // Throws, with one message on every rank, when the ranks hold different parameters or optimizer
  // state (one all-reduce of a 64-bit hash; per-tensor hashes are gathered only then), or when a
  // parameter holds a NaN or Inf (naming it). One pass over parameters and optimizer state.
  void check(std::int64_t after_step);

 private:
  const Context& ctx_;
  comm::Communicator& comm_;
  Sequential& model_;
  std::vector<HashedTensor> tensors_;
  Tensor nonfinite_at_;  // i32 [1] on the device
};

}  // namespace dpt::nn
