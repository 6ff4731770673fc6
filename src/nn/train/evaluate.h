// SPDX-License-Identifier: MIT
// Evaluation of a model on a dataset split, sharded over the ranks of a communicator: used after
// each training epoch and by `train eval`.
#pragma once

#include <cstdint>
#include <vector>

#include "comm/communicator.h"
#include "nn/sequential.h"
#include "runtime/io/dataset.h"

namespace dpt::nn {

struct EvalResult {
  double loss = 0.0;  // mean over targets: samples, or a language model's tokens
  double accuracy = 0.0;
  std::int64_t samples = 0;  // targets evaluated (tokens for a language model)
};

// Forward passes only (dropout off). Each rank evaluates its share of every batch; loss and
// accuracy are all-reduced, so every rank returns the same result. With `logits` (one rank only)
// the logits of every sample are appended in dataset order.
// `compute`: the format of GEMM and convolution inputs (StepInfo::compute).
EvalResult evaluate_model(const Context& ctx, comm::Communicator& comm, Sequential& model,
                          const io::DatasetSplit& split, std::vector<float>* logits = nullptr,
                          DType compute = DType::kF32);
// Exact mode: the same numbers on any number of ranks (Note [Exact evaluation]).
EvalResult evaluate_model_exact(const Context& ctx, comm::Communicator& comm, Sequential& model,
                                const io::DatasetSplit& split, DType compute = DType::kF32);

}  // namespace dpt::nn
