// SPDX-License-Identifier: MIT
// plan_exact_sum: blocks and scratch layout of the exact sum on the GPU (exact_sum_plan.h).
#include "comm/nccl/exact_sum_plan.h"

#include "runtime/check.h"

namespace dpt::comm::nccl {
namespace {

std::size_t aligned(std::size_t bytes) {
  return (bytes + kScratchAlignment - 1) / kScratchAlignment * kScratchAlignment;
}

}  // namespace

ExactSumPlan plan_exact_sum(std::int64_t count, std::int64_t chunks, int rank, int world) {
  // Bounds far above any GPU's memory that keep every byte count below 2^63.
  constexpr std::int64_t kMaxCount = std::int64_t{1} << 56;
  DPT_CHECK(world >= 1 && rank >= 0 && rank < world, "exact_sum: rank ", rank,
            " is not a rank of a world of ", world);
  DPT_CHECK(count >= 1 && count <= kMaxCount, "exact_sum on device memory: ", count,
            " values; expected 1 to 2^56");
  DPT_CHECK(chunks >= 1 && chunks <= count, "exact_sum on device memory: ", chunks, " chunks for ",
            count, " values");
  ExactSumPlan plan;
  plan.count = count;
  plan.rank = rank;
  plan.block = (count + world - 1) / world;
  plan.padded = plan.block * world;
  plan.gather_into_out = plan.padded == count;

  const auto n = [](std::int64_t v) { return static_cast<std::size_t>(v); };
  std::size_t offset = 0;
  plan.codes_offset = offset;
  offset += aligned(n(chunks) * sizeof(std::int32_t));
  plan.sums_offset = offset;
  offset += aligned(n(plan.padded) * sizeof(std::int64_t));
  plan.floats_offset = offset;
  if (!plan.gather_into_out) offset += aligned(n(plan.padded) * sizeof(float));
  plan.bytes = offset;
  return plan;
}

}  // namespace dpt::comm::nccl
