// SPDX-License-Identifier: MIT
// The GPU exact sum's host-side arithmetic without a GPU (comm/nccl/exact_sum_plan.h): the padded
// blocks and scratch layout, the chunk search, the powers of two, and the whole device sequence
// (Note [Exact sum on the GPU]) replayed on the host with the kernels' own per-element functions,
// shard groups and blocks, simulated collectives in between: for every world size it gives the
// bits of LocalCommunicator's exact sum of all shards, NaN and infinities included. Label unit:
// it runs on the CPU machines of a CUDA build; tests/cuda/nccl_test.cpp runs the kernels.
#include "comm/nccl/exact_sum_plan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "comm/local_communicator.h"
#include "runtime/error.h"
#include "runtime/exact_sum.h"
#include "testing/exact_sum_cases.h"

namespace dpt::comm::nccl {
namespace {

TEST(ExactSumPlan, BlocksPadTheCountToAMultipleOfTheWorld) {
  struct Case {
    std::int64_t count;
    int world;
    std::int64_t block, padded;
    std::vector<std::int64_t> own;  // per rank
  };
  const std::vector<Case> cases = {
      {1, 1, 1, 1, {1}},
      {1, 2, 1, 2, {1, 0}},  // rank 1's block is all padding
      {7, 3, 3, 9, {3, 3, 1}},
      {8, 4, 2, 8, {2, 2, 2, 2}},
      {5, 8, 1, 8, {1, 1, 1, 1, 1, 0, 0, 0}},
      {1023, 2, 512, 1024, {512, 511}},
  };
  for (const Case& c : cases) {
    for (int r = 0; r < c.world; ++r) {
      SCOPED_TRACE(::testing::Message() << c.count << " values, rank " << r << " of " << c.world);
      const ExactSumPlan plan = plan_exact_sum(c.count, 1, r, c.world);
      EXPECT_EQ(plan.block, c.block);
      EXPECT_EQ(plan.padded, c.padded);
      EXPECT_EQ(plan.first(), c.block * r);
      EXPECT_EQ(plan.own(), c.own[static_cast<std::size_t>(r)]);
      EXPECT_EQ(plan.gather_into_out, c.padded == c.count);
    }
  }
}

TEST(ExactSumPlan, ScratchRegionsAreAlignedDisjointAndLargeEnough) {
  for (const std::int64_t count :
       {std::int64_t{1}, std::int64_t{7}, std::int64_t{1000}, std::int64_t{1} << 40}) {
    for (const int world : {1, 2, 3, 8}) {
      const std::int64_t chunks = (count + 255) / 256;
      const ExactSumPlan plan = plan_exact_sum(count, chunks, world - 1, world);
      SCOPED_TRACE(::testing::Message() << count << " values on " << world << " ranks");
      for (const std::size_t offset : {plan.codes_offset, plan.sums_offset, plan.floats_offset}) {
        EXPECT_EQ(offset % kScratchAlignment, 0u);
      }
      const auto n = [](std::int64_t v) { return static_cast<std::size_t>(v); };
      EXPECT_LE(plan.codes_offset + n(chunks) * 4, plan.sums_offset);
      EXPECT_LE(plan.sums_offset + n(plan.padded) * 8, plan.floats_offset);
      if (plan.gather_into_out) {
        EXPECT_EQ(plan.floats_offset, plan.bytes) << "no float scratch when gathering into out";
      } else {
        EXPECT_LE(plan.floats_offset + n(plan.padded) * 4, plan.bytes);
      }
    }
  }
}

TEST(ExactSumPlan, RejectsWhatTheDevicePathCannotTake) {
  EXPECT_THROW(plan_exact_sum(0, 1, 0, 1), Error);                      // count 0 goes to the host
  EXPECT_THROW(plan_exact_sum(10, 0, 0, 1), Error);                     // no chunk
  EXPECT_THROW(plan_exact_sum(10, 11, 0, 1), Error);                    // more chunks than values
  EXPECT_THROW(plan_exact_sum(10, 1, 2, 2), Error);                     // rank outside the world
  EXPECT_THROW(plan_exact_sum(std::int64_t{1} << 57, 1, 0, 1), Error);  // byte counts overflow
}

TEST(ExactSumPlan, ChunkIndexIsTheLastStartAtOrBeforeTheElement) {
  const std::vector<std::vector<std::int64_t>> layouts = {
      {0}, {0, 1}, {0, 1, 2, 3, 4}, {0, 256, 513, 771, 1000}, {0, 5, 6, 300}};
  for (const auto& starts : layouts) {
    const std::int64_t count = starts.back() + 7;
    for (std::int64_t i = 0; i < count; ++i) {
      std::int64_t want = 0;
      for (std::size_t c = 0; c < starts.size(); ++c) {
        if (starts[c] <= i) want = static_cast<std::int64_t>(c);
      }
      ASSERT_EQ(chunk_index(starts.data(), static_cast<std::int64_t>(starts.size()), i), want)
          << "element " << i << " of " << starts.size() << " chunks";
    }
  }
}

TEST(ExactSumPlan, PowerOfTwoIsLdexpOfOne) {
  for (int e = -1022; e <= 1023; ++e) {
    ASSERT_EQ(power_of_two(e), std::ldexp(1.0, e)) << "2^" << e;
  }
}

TEST(ExactSumPlan, ShardGroupsCoverEveryShardOnceInOrder) {
  for (const std::size_t n :
       {std::size_t{0}, std::size_t{1}, std::size_t{64}, std::size_t{65}, std::size_t{130}}) {
    std::vector<float> storage(n + 1);
    std::vector<const float*> shards;
    for (std::size_t s = 0; s < n; ++s) shards.push_back(&storage[s]);
    std::vector<const float*> seen;
    int launches = 0, firsts = 0;
    for_each_shard_group(shards, [&](const ShardGroup& group, bool first_group) {
      ++launches;
      firsts += first_group ? 1 : 0;
      EXPECT_EQ(first_group, launches == 1);
      EXPECT_LE(group.count, kShardsPerLaunch);
      seen.insert(seen.end(), group.data, group.data + group.count);
    });
    EXPECT_EQ(seen, shards) << n << " shards";
    EXPECT_EQ(launches, std::max<std::size_t>(1, (n + kShardsPerLaunch - 1) / kShardsPerLaunch))
        << n << " shards: at least one launch, so that codes and sums are written";
    EXPECT_EQ(firsts, 1);
  }
}

// ---- the device sequence on the host -------------------------------------------------------

// The kernels of exact_sum_kernels.cu, launch by launch, with the same functions and groups.
void codes_of(std::span<const float* const> shards, std::int64_t count,
              const std::vector<std::int64_t>& starts, std::vector<std::int32_t>& codes) {
  const auto chunks = static_cast<std::int64_t>(starts.size());
  codes.assign(starts.size(), 0);
  for_each_shard_group(shards, [&](const ShardGroup& group, bool first_group) {
    for (std::int64_t c = 0; c < chunks; ++c) {
      const std::int64_t end = c + 1 < chunks ? starts[static_cast<std::size_t>(c) + 1] : count;
      std::uint32_t widest = 0;
      for (int s = 0; s < group.count; ++s) {
        for (std::int64_t i = starts[static_cast<std::size_t>(c)]; i < end; ++i) {
          std::uint32_t bits;
          std::memcpy(&bits, group.data[s] + i, sizeof bits);
          widest = std::max(widest, bits & 0x7fffffffu);
        }
      }
      const std::int32_t code = code_of_widest(widest);
      auto& slot = codes[static_cast<std::size_t>(c)];
      slot = first_group ? code : std::max(slot, code);
    }
  });
}

void quantize_into(std::span<const float* const> shards, const ExactSumPlan& plan,
                   const std::vector<std::int64_t>& starts, const std::vector<std::int32_t>& codes,
                   int headroom, std::vector<std::int64_t>& sums) {
  sums.assign(static_cast<std::size_t>(plan.padded), -1);  // the kernel must write every one
  const auto chunks = static_cast<std::int64_t>(starts.size());
  for_each_shard_group(shards, [&](const ShardGroup& group, bool first_group) {
    const std::int64_t end = first_group ? plan.padded : plan.count;
    for (std::int64_t i = 0; i < end; ++i) {
      const std::int64_t sum =
          i < plan.count
              ? element_sum(group.data, group.count, i,
                            codes[static_cast<std::size_t>(chunk_index(starts.data(), chunks, i))],
                            headroom)
              : 0;
      auto& slot = sums[static_cast<std::size_t>(i)];
      slot = first_group ? sum : slot + sum;
    }
  });
}

// What every rank's exact_sum_async leaves in `out`, rank by rank; all ranks must agree.
std::vector<float> device_sequence(const std::vector<std::vector<float>>& all, int world,
                                   std::int64_t count, const std::vector<std::int64_t>& starts) {
  const auto total = static_cast<std::int64_t>(all.size());
  const std::int64_t per_rank = total / world;
  const int headroom = exact::headroom_bits(total);
  const auto chunks = static_cast<std::int64_t>(starts.size());
  std::vector<std::vector<const float*>> shards(static_cast<std::size_t>(world));
  for (std::int64_t s = 0; s < total; ++s) {
    shards[static_cast<std::size_t>(s / per_rank)].push_back(
        all[static_cast<std::size_t>(s)].data());
  }
  // 1. codes per rank, MAX all-reduce.
  std::vector<std::int32_t> codes(starts.size(), exact::kZeroCode), mine;
  for (int r = 0; r < world; ++r) {
    codes_of(shards[static_cast<std::size_t>(r)], count, starts, mine);
    for (std::size_t c = 0; c < codes.size(); ++c) codes[c] = std::max(codes[c], mine[c]);
  }
  // 2. padded integers per rank, SUM reduce-scatter (every block summed; rank r keeps block r).
  std::vector<std::vector<std::int64_t>> sums(static_cast<std::size_t>(world));
  std::vector<ExactSumPlan> plans;
  for (int r = 0; r < world; ++r) {
    plans.push_back(plan_exact_sum(count, chunks, r, world));
    quantize_into(shards[static_cast<std::size_t>(r)], plans.back(), starts, codes, headroom,
                  sums[static_cast<std::size_t>(r)]);
  }
  const std::int64_t padded = plans[0].padded;
  std::vector<std::int64_t> reduced(static_cast<std::size_t>(padded), 0);
  for (const auto& rank_sums : sums) {
    for (std::int64_t i = 0; i < padded; ++i)
      reduced[static_cast<std::size_t>(i)] += rank_sums[static_cast<std::size_t>(i)];
  }
  // 3. each rank dequantises its block; the all-gather concatenates the blocks; out = first count.
  std::vector<float> gathered(static_cast<std::size_t>(padded), -1.0f);
  for (const ExactSumPlan& plan : plans) {
    for (std::int64_t j = 0; j < plan.block; ++j) {
      const std::int64_t i = plan.first() + j;
      gathered[static_cast<std::size_t>(i)] =
          i < count ? element_result(
                          reduced[static_cast<std::size_t>(i)],
                          codes[static_cast<std::size_t>(chunk_index(starts.data(), chunks, i))],
                          headroom)
                    : 0.0f;
    }
  }
  return {gathered.begin(), gathered.begin() + count};
}


TEST(ExactSumPlan, DeviceSequenceGivesTheOneRankHostSumBitwise) {
  for (const int total : {12, 130}) {  // 130: more than one shard group on 1 and 2 ranks
    for (const std::int64_t count : {1, 2, 7, 256, 257, 1000, 1283}) {
      std::vector<std::vector<std::int64_t>> layouts;
      layouts.emplace_back();
      for (std::int64_t s = 0; s < count; s += 256 + s % 3) layouts.back().push_back(s);
      layouts.push_back({0});  // one chunk
      layouts.emplace_back();  // short chunks, so that chunks 1 to 4 exist at small counts
      for (std::int64_t s = 0; s < count; s += 2) layouts.back().push_back(s);
      for (const auto& starts : layouts) {
        std::vector<std::vector<float>> all;
        for (int s = 0; s < total; ++s) all.push_back(test::exact_shard_with_specials(s, count, starts, total));
        ExactSumBucket one;
        for (const auto& shard : all) one.shards.push_back(shard.data());
        std::vector<float> expected(static_cast<std::size_t>(count));
        one.out = expected.data();
        one.count = count;
        one.chunk_starts = starts;
        one.total_shards = total;
        LocalCommunicator().exact_sum_async(one)->wait();
        for (const int world : {1, 2, 3, 5, 6}) {
          if (total % world != 0) continue;
          SCOPED_TRACE(::testing::Message() << total << " shards, " << count << " values in "
                                            << starts.size() << " chunks, " << world << " ranks");
          const std::vector<float> got = device_sequence(all, world, count, starts);
          std::int64_t differ = 0, first = -1;
          for (std::int64_t i = 0; i < count; ++i) {
            if (std::memcmp(&got[static_cast<std::size_t>(i)],
                            &expected[static_cast<std::size_t>(i)], 4) != 0 &&
                differ++ == 0)
              first = i;
          }
          EXPECT_EQ(differ, 0) << "first at " << first << ": got "
                               << (first >= 0 ? got[static_cast<std::size_t>(first)] : 0.0f)
                               << ", want "
                               << (first >= 0 ? expected[static_cast<std::size_t>(first)] : 0.0f);
        }
      }
    }
  }
}

}  // namespace
}  // namespace dpt::comm::nccl
