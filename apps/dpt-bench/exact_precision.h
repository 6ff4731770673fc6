// SPDX-License-Identifier: MIT
// `dpt-bench exact-precision`: how close three sums of one global batch's micro-shard gradients
// come to their float64 sum, per parameter of a reference model (or of a checkpoint's model, for
// the gradients of a trained one):
//   float, shard order    the shards added one after another in float (one rank accumulating
//                         micro-batches)
//   float, pairwise tree  the shards added pairwise in float (the shape of a tree all-reduce)
//   exact                 exact mode's fixed-point sum, computed by DataParallel in exact mode on a
//                         LocalCommunicator (its chunks, its buckets: what training uses)
// Measures: the normwise relative error max|x - ref| / max|ref| of each parameter (the largest over
// the parameters is reported, with its parameter), the median and 99th percentile of the
// elementwise relative error |x - ref| / |ref| over every element with ref != 0, and the share of
// elements equal to ref rounded to float (correctly rounded).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dpt::bench {

struct ExactPrecisionOptions {
  std::string data;                           // dataset file (HDF5), split "train"
  std::string model = "cnn";                  // a reference model, initialised from `seed`
  std::string checkpoint;                     // or the model (and seed, step) of a checkpoint
  std::int64_t batch = 128;                   // global batch
  std::vector<std::int64_t> shard_sizes{32, 4};  // one measurement per shard size
  std::uint64_t seed = 0;
  int threads = 1;
};

// Prints a markdown table (a header line, then one row per shard size and sum) on stdout.
int run_exact_precision(const ExactPrecisionOptions& options);

}  // namespace dpt::bench
