// SPDX-License-Identifier: MIT
// --nonfinite abort|skip: what a step does whose gradients hold NaN or Inf. Every rank takes the
// same decision before the optimizer (Note [Non-finite gradients] in nonfinite.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "nn/parallel/data_parallel.h"
#include "nn/sequential.h"
#include "runtime/context.h"
#include "runtime/tensor.h"

namespace dpt::nn {

enum class NonfinitePolicy { kAbort, kSkip };

// "abort" or "skip" (validated by the config) to the policy.
NonfinitePolicy parse_nonfinite_policy(const std::string& text);

// The parameter holding element `flat_index` of the model's flat buffer, as "layers.1.weight
// (element 17)": for messages.
std::string describe_flat_element(const Sequential& model, std::int64_t flat_index);

class NonfiniteGuard {
 public:
  // Installs the local check as ddp's launch hook.
  NonfiniteGuard(const Context& ctx, comm::Communicator& comm, Sequential& model, DataParallel& ddp,
                 NonfinitePolicy policy, std::int64_t skip_limit);
  NonfiniteGuard(const NonfiniteGuard&) = delete;
  NonfiniteGuard& operator=(const NonfiniteGuard&) = delete;
  ~NonfiniteGuard();

  // After the step's gradients are reduced (ddp.finish()) and before the optimizer, on every rank:
  // true when the step is to be skipped (policy skip). Throws, with one message on every rank,
  // under abort or once more than skip_limit steps were skipped; the message names the step, and
  // the ranks and parameters whose local gradients first held a NaN or Inf. Waits for the
  // all-reduces (ddp.complete()). loss_scaled (--precision fp16): such a step is an overflow of the
  // loss scale, skipped whatever the policy, without a warning and not counted against the limit;
  // the caller backs the scale off (Note [Loss scaling]).
  bool skip_step(std::int64_t step, bool loss_scaled = false);
  std::int64_t skipped() const { return skipped_; }

 private:
  // ddp's launch hook: finds the first non-finite value of the bucket in each local buffer.
  void scan(std::size_t bucket);
  // This rank's finding for the message ("" when its gradients were finite).
  std::string local_finding(const Tensor& found) const;

  const Context& ctx_;
  comm::Communicator& comm_;
  Sequential& model_;
  DataParallel& ddp_;
  NonfinitePolicy policy_;
  std::int64_t skip_limit_;
  std::vector<Tensor> local_grads_;  // DataParallel::local_gradients()
  Tensor found_;                     // i32 [buckets x local buffers]: first index, or the count
  Tensor reduced_found_;             // i32 [1]: the reduced check (policy skip, several ranks)
  std::int64_t skipped_ = 0;
};

}  // namespace dpt::nn
