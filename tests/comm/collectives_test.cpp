// SPDX-License-Identifier: MIT
// Every collective against closed-form answers from rank-dependent inputs (flashlight's tests), at
// each world size the suite is launched with (MPI_RANKS 1 2 4, plus a chunked run at 3).
#include <gtest/gtest.h>

#include <algorithm>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "comm/communicator.h"
#include "comm/local_communicator.h"
#include "runtime/error.h"
#include "runtime/timeline.h"
#include "testing/exact_sum_cases.h"
#include "testing/mpi_test_util.h"

namespace dpt::comm {
namespace {

using dpt::test::world;

// Empty, one element, odd, and larger than a chunk in the chunked run.
constexpr std::int64_t kSizes[] = {0, 1, 7, 100003};

int env_int(const char* name, int fallback) {
  const char* value = std::getenv(name);
  return value != nullptr ? std::atoi(value) : fallback;
}

// Expects `call` to throw dpt::Error whose message names `op`.
template <typename Call>
void expect_error_naming(const std::string& op, Call call) {
  try {
    call();
    ADD_FAILURE() << "no error thrown; expected one naming " << op;
  } catch (const dpt::Error& e) {
    EXPECT_NE(std::string(e.what()).find(op), std::string::npos) << e.what();
  }
}

TEST(Collectives, WorldMatchesLauncher) {
  Communicator& comm = world();
  if (std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr) {
    EXPECT_EQ(comm.backend(), "mpi");
    EXPECT_EQ(comm.world_size(), env_int("OMPI_COMM_WORLD_SIZE", -1));
    EXPECT_EQ(comm.rank(), env_int("OMPI_COMM_WORLD_RANK", -1));
    EXPECT_EQ(comm.local_rank(), env_int("OMPI_COMM_WORLD_LOCAL_RANK", -1));
    EXPECT_EQ(comm.local_size(), env_int("OMPI_COMM_WORLD_LOCAL_SIZE", -1));
    EXPECT_EQ(dpt::process_rank(), comm.rank());
  } else {
    EXPECT_EQ(comm.backend(), "local");
    EXPECT_EQ(comm.world_size(), 1);
  }
  // Every test job runs on this one machine.
  EXPECT_EQ(comm.node_count(), 1);
  EXPECT_EQ(comm.local_size(), comm.world_size());
  EXPECT_EQ(comm.local_rank(), comm.rank());
  // Ranks are distinct and cover 0..n-1.
  const std::vector<std::string> ranks = comm.all_gather(std::to_string(comm.rank()));
  ASSERT_EQ(static_cast<int>(ranks.size()), comm.world_size());
  for (int r = 0; r < comm.world_size(); ++r) EXPECT_EQ(ranks[r], std::to_string(r));
}

TEST(Collectives, AllReduceFloat) {
  Communicator& comm = world();
  const int r = comm.rank(), n = comm.world_size();
  for (const ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kMin}) {
    for (const std::int64_t count : kSizes) {
      // Small integers: every sum is exact whatever the order of additions.
      std::vector<float> data(static_cast<std::size_t>(count));
      for (std::int64_t i = 0; i < count; ++i) data[i] = static_cast<float>(r + 1 + i % 5);
      comm.all_reduce(data.data(), count, op);
      int mismatches = 0;
      for (std::int64_t i = 0; i < count; ++i) {
        const float k = static_cast<float>(i % 5);
        const float expected = op == ReduceOp::kSum   ? n * (n + 1) / 2.0f + n * k
                               : op == ReduceOp::kMax ? n + k
                                                      : 1 + k;
        if (data[i] != expected && mismatches++ < 3) {
          ADD_FAILURE() << "op " << static_cast<int>(op) << " count " << count << " [" << i
                        << "] = " << data[i] << ", expected " << expected;
        }
      }
      EXPECT_EQ(mismatches, 0) << "op " << static_cast<int>(op) << " count " << count;
    }
  }
}

// The benchmark baseline sums like all_reduce and reports the time of its call: more than zero
// when there is something to send, and within the time the caller waited for it (both read the
// same steady clock). A world of one (no MPI) has nothing to time and says 0.
TEST(Collectives, NativeAllReduceSums) {
  Communicator& comm = world();
  const int r = comm.rank(), n = comm.world_size();
  for (const std::int64_t count : kSizes) {
    std::vector<float> data(static_cast<std::size_t>(count), static_cast<float>(r + 1));
    const double before = steady_now_seconds();
    const double seconds = comm.native_all_reduce_seconds(data.data(), count);
    const double waited = steady_now_seconds() - before;
    if (comm.backend() == "local") {
      EXPECT_EQ(seconds, 0.0);
    } else {
      if (count > 0) {
        EXPECT_GT(seconds, 0.0) << "count " << count;
      }
      EXPECT_LE(seconds, waited) << "count " << count;
    }
    EXPECT_EQ(std::count(data.begin(), data.end(), n * (n + 1) / 2.0f), count) << "count " << count;
  }
}

// --grad-reduce bf16 (Note [bf16 all-reduce]): sums that bf16 holds exactly come out exactly, on
// every rank the same bits; a partial sum that bf16 cannot hold is rounded to nearest even.
TEST(Collectives, AllReduceBf16SumsAndRoundsEachPartialSum) {
  Communicator& comm = world();
  const int n = comm.world_size(), r = comm.rank();
  for (const std::int64_t count : {std::int64_t{1}, std::int64_t{1000}, std::int64_t{100003}}) {
    std::vector<BFloat16> data(static_cast<std::size_t>(count));
    for (std::int64_t i = 0; i < count; ++i) {
      data[static_cast<std::size_t>(i)] = to_bf16(static_cast<float>((r + 1) * (i % 7) - 3));
    }
    comm.all_reduce_bf16_async(data.data(), count)->wait();
    for (std::int64_t i = 0; i < count; ++i) {
      // sum over ranks of (rank + 1) * (i % 7) - 3: small integers, exact in bf16.
      const float want = static_cast<float>(n * (n + 1) / 2 * (i % 7) - 3 * n);
      ASSERT_EQ(to_float(data[static_cast<std::size_t>(i)]), want) << "element " << i;
    }
  }
  if (n == 2) {
    // 1 + 2^-8 is halfway between bf16's 1 and 1 + 2^-7: to the even 1. 1 + 3 * 2^-9 rounds up.
    BFloat16 tie[2] = {to_bf16(r == 0 ? 1.0f : 0x1p-8f), to_bf16(r == 0 ? 1.0f : 0x3p-9f)};
    comm.all_reduce_bf16_async(tie, 2)->wait();
    EXPECT_EQ(to_float(tie[0]), 1.0f);
    EXPECT_EQ(to_float(tie[1]), 1.0f + 0x1p-7f);
  }
  EXPECT_THROW(comm.all_reduce_bf16_async(nullptr, 4), Error);
}

TEST(Collectives, AllReduceDouble) {
  Communicator& comm = world();
  const int r = comm.rank(), n = comm.world_size();
  for (const ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kMin}) {
    for (const std::int64_t count : kSizes) {
      std::vector<double> data(static_cast<std::size_t>(count));
      for (std::int64_t i = 0; i < count; ++i) data[i] = 0.5 * (r + 1) + static_cast<double>(i % 5);
      comm.all_reduce(data.data(), count, op);
      int mismatches = 0;
      for (std::int64_t i = 0; i < count; ++i) {
        const double k = static_cast<double>(i % 5);
        const double expected = op == ReduceOp::kSum   ? 0.25 * n * (n + 1) + n * k
                                : op == ReduceOp::kMax ? 0.5 * n + k
                                                       : 0.5 + k;
        if (data[i] != expected && mismatches++ < 3) {
          ADD_FAILURE() << "op " << static_cast<int>(op) << " count " << count << " [" << i
                        << "] = " << data[i] << ", expected " << expected;
        }
      }
      EXPECT_EQ(mismatches, 0) << "op " << static_cast<int>(op) << " count " << count;
    }
  }
}

// Inexact sums (rounding depends on the order of additions) must still leave every rank with the
// same bits: DDP keeps parameters bitwise identical only if this holds. Note [Deterministic sums].
TEST(Collectives, AllReduceSumIsBitwiseIdenticalOnAllRanks) {
  Communicator& comm = world();
  const std::int64_t count = 100003;
  std::vector<float> data(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i) {
    data[i] = 1.0f / static_cast<float>(comm.rank() + 3) + 1e-3f * static_cast<float>(i % 97);
  }
  comm.all_reduce(data.data(), count, ReduceOp::kSum);
  const std::string bytes(reinterpret_cast<const char*>(data.data()), data.size() * sizeof(float));
  const std::vector<std::string> everyone = comm.all_gather(bytes);
  for (int q = 0; q < comm.world_size(); ++q) EXPECT_TRUE(everyone[q] == bytes) << "rank " << q;
}

TEST(Collectives, AllReduceInt64) {
  Communicator& comm = world();
  const int r = comm.rank(), n = comm.world_size();
  // Values above 2^53: a double sum would round them.
  std::vector<std::int64_t> v{(std::int64_t{1} << 60) + r, -r, r};
  comm.all_reduce(v.data(), 3, ReduceOp::kSum);
  EXPECT_EQ(v[0], (std::int64_t{1} << 60) * n + n * (n - 1) / 2);
  EXPECT_EQ(v[1], -n * (n - 1) / 2);
  comm.all_reduce(v.data() + 2, 1, ReduceOp::kMax);
  EXPECT_EQ(v[2], n * (n - 1) / 2);
}

// The exact sum over N ranks holding 12 / N shards each equals, bit for bit, one rank summing all
// twelve (LocalCommunicator), at every size (one above the chunked run's piece limit).
TEST(Collectives, ExactSumEqualsOneRankBitwise) {
  Communicator& comm = world();
  constexpr int kShards = 12;
  const int n = comm.world_size();
  ASSERT_EQ(kShards % n, 0) << "the suite runs at world sizes dividing 12";
  for (const std::int64_t count : kSizes) {
    SCOPED_TRACE(::testing::Message() << count << " values");
    std::vector<std::int64_t> starts;
    for (std::int64_t s = 0; s < count; s += 256 + s % 3) starts.push_back(s);
    std::vector<std::vector<float>> all;
    for (int s = 0; s < kShards; ++s) all.push_back(test::exact_shard(s, count));
    ExactSumBucket one;
    for (const auto& shard : all) one.shards.push_back(shard.data());
    std::vector<float> expected(static_cast<std::size_t>(count));
    one.out = expected.data();
    one.count = count;
    one.chunk_starts = starts;
    one.total_shards = kShards;
    LocalCommunicator local;
    local.exact_sum_async(one)->wait();

    const int per_rank = kShards / n;
    ExactSumBucket mine = one;
    mine.shards.clear();
    for (int s = comm.rank() * per_rank; s < (comm.rank() + 1) * per_rank; ++s) {
      mine.shards.push_back(all[static_cast<std::size_t>(s)].data());
    }
    // In place over this rank's last shard, as DataParallel does.
    std::vector<float> out = all[static_cast<std::size_t>((comm.rank() + 1) * per_rank - 1)];
    mine.shards.back() = out.data();
    mine.out = out.data();
    comm.exact_sum_async(mine)->wait();
    // (memcmp must not see the null data of empty vectors, even for 0 bytes)
    if (count > 0) {
      EXPECT_EQ(std::memcmp(out.data(), expected.data(), out.size() * sizeof(float)), 0);
    }
  }
}

TEST(Collectives, BroadcastFromFirstAndLastRank) {
  Communicator& comm = world();
  const int n = comm.world_size();
  for (const int root : {0, n - 1}) {
    for (const std::int64_t count : kSizes) {
      const std::int64_t count_bytes = count * 4;
      auto pattern = [&](std::int64_t i) {
        return static_cast<unsigned char>((root * 31 + i * 7) % 251);
      };
      std::vector<unsigned char> data(static_cast<std::size_t>(count_bytes), 0xEE);
      if (comm.rank() == root) {
        for (std::int64_t i = 0; i < count_bytes; ++i) data[i] = pattern(i);
      }
      comm.broadcast(data.data(), count_bytes, root);
      int mismatches = 0;
      for (std::int64_t i = 0; i < count_bytes; ++i) mismatches += data[i] != pattern(i);
      EXPECT_EQ(mismatches, 0) << "root " << root << " bytes " << count_bytes;
    }
  }
}

TEST(Collectives, AllGatherDifferentLengthsPerRank) {
  Communicator& comm = world();
  const int n = comm.world_size();
  // Rank 0's string is empty in the first round; the second exceeds a chunk.
  for (const std::int64_t base : {std::int64_t{0}, std::int64_t{100003}}) {
    auto string_of = [&](int q) {
      return std::string(static_cast<std::size_t>(base + 3 * q + q % 2),
                         static_cast<char>('a' + q % 26));
    };
    const std::vector<std::string> all = comm.all_gather(string_of(comm.rank()));
    ASSERT_EQ(static_cast<int>(all.size()), n);
    for (int q = 0; q < n; ++q)
      EXPECT_TRUE(all[q] == string_of(q)) << "rank " << q << " base " << base;
  }
  const std::vector<std::string> empty = comm.all_gather("");
  ASSERT_EQ(static_cast<int>(empty.size()), n);
  for (const std::string& s : empty) EXPECT_TRUE(s.empty());
}

TEST(Collectives, ReduceScatter) {
  Communicator& comm = world();
  const int r = comm.rank(), n = comm.world_size();
  for (const ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kMin}) {
    for (const std::int64_t block : kSizes) {
      std::vector<float> data(static_cast<std::size_t>(block * n));
      for (int b = 0; b < n; ++b) {
        for (std::int64_t i = 0; i < block; ++i)
          data[b * block + i] = static_cast<float>(r + b + i % 3);
      }
      comm.reduce_scatter(data.data(), block, op);
      int mismatches = 0;
      for (std::int64_t i = 0; i < block; ++i) {
        const float k = static_cast<float>(r + i % 3);  // this rank's block index is r
        const float expected = op == ReduceOp::kSum   ? n * (n - 1) / 2.0f + n * k
                               : op == ReduceOp::kMax ? (n - 1) + k
                                                      : k;
        const float actual = data[r * block + i];
        if (actual != expected && mismatches++ < 3) {
          ADD_FAILURE() << "op " << static_cast<int>(op) << " block " << block << " [" << i
                        << "] = " << actual << ", expected " << expected;
        }
      }
      EXPECT_EQ(mismatches, 0) << "op " << static_cast<int>(op) << " block " << block;
    }
  }
}

// Uneven blocks as a sharded optimizer's buckets cut them: some empty, one larger than a chunk of
// the chunked run (1000), the last shorter.
std::vector<std::vector<std::int64_t>> uneven_layouts(int n) {
  std::vector<std::vector<std::int64_t>> layouts;
  std::vector<std::int64_t> first(static_cast<std::size_t>(n)), second(first.size()),
      alone(first.size(), 0);
  for (int r = 0; r < n; ++r) {
    first[static_cast<std::size_t>(r)] = r % 2 == 0 ? 2500 + 7 * r : 0;
    second[static_cast<std::size_t>(r)] = r + 1 == n ? 3 : 1001;
  }
  alone[static_cast<std::size_t>(n - 1)] = 11;  // the whole bucket inside the last shard
  layouts.push_back(first);
  layouts.push_back(second);
  layouts.push_back(alone);
  layouts.push_back(std::vector<std::int64_t>(static_cast<std::size_t>(n), 0));
  return layouts;
}

std::int64_t start_of(const std::vector<std::int64_t>& counts, int r) {
  std::int64_t start = 0;
  for (int q = 0; q < r; ++q) start += counts[static_cast<std::size_t>(q)];
  return start;
}

TEST(Collectives, ReduceScatterUnevenBlocksInPlace) {
  Communicator& comm = world();
  const int r = comm.rank(), n = comm.world_size();
  for (const std::vector<std::int64_t>& counts : uneven_layouts(n)) {
    const std::int64_t total = start_of(counts, n);
    std::vector<float> data(static_cast<std::size_t>(total));
    for (std::int64_t i = 0; i < total; ++i) data[i] = static_cast<float>(r + 1) * (i % 5 + 1);
    comm.reduce_scatter_async(data.data(), counts, ReduceOp::kSum)->wait();
    const std::int64_t begin = start_of(counts, r), end = begin + counts[r];
    int mismatches = 0;
    for (std::int64_t i = begin; i < end; ++i) {
      const float expected = n * (n + 1) / 2.0f * (i % 5 + 1);
      if (data[i] != expected && mismatches++ < 3) {
        ADD_FAILURE() << "total " << total << " [" << i << "] = " << data[i] << ", expected "
                      << expected;
      }
    }
    EXPECT_EQ(mismatches, 0) << "total " << total;
  }
}

TEST(Collectives, AllGatherUnevenBlocksInPlace) {
  Communicator& comm = world();
  const int r = comm.rank(), n = comm.world_size();
  for (const std::vector<std::int64_t>& counts : uneven_layouts(n)) {
    const std::int64_t total = start_of(counts, n);
    std::vector<float> data(static_cast<std::size_t>(total), -1.0f);
    const std::int64_t begin = start_of(counts, r);
    for (std::int64_t i = begin; i < begin + counts[r]; ++i) data[i] = static_cast<float>(i) + 0.5f;
    comm.all_gather_async(data.data(), counts)->wait();
    for (std::int64_t i = 0; i < total; ++i) {
      ASSERT_EQ(data[i], static_cast<float>(i) + 0.5f) << "total " << total << " [" << i << "]";
    }
  }
}

TEST(Collectives, GatherAndScatterUnevenBlocksToAnyRoot) {
  Communicator& comm = world();
  const int r = comm.rank(), n = comm.world_size();
  for (const int root : {0, n - 1}) {
    for (const std::vector<std::int64_t>& counts : uneven_layouts(n)) {
      const std::int64_t total = start_of(counts, n), begin = start_of(counts, r);
      std::vector<float> mine(static_cast<std::size_t>(counts[r]));
      for (std::size_t i = 0; i < mine.size(); ++i) mine[i] = static_cast<float>(begin + i) * 2;
      std::vector<float> all(r == root ? static_cast<std::size_t>(total) : 0, -1.0f);
      comm.gather(mine.data(), all.data(), counts, root);
      if (r == root) {
        for (std::int64_t i = 0; i < total; ++i) {
          ASSERT_EQ(all[i], static_cast<float>(i) * 2) << "gather to " << root << " [" << i << "]";
        }
        for (std::int64_t i = 0; i < total; ++i) all[i] = static_cast<float>(i) * 3;
      }
      std::vector<float> back(mine.size(), -1.0f);
      comm.scatter(all.data(), back.data(), counts, root);
      for (std::size_t i = 0; i < back.size(); ++i) {
        ASSERT_EQ(back[i], static_cast<float>(begin + i) * 3) << "scatter from " << root;
      }
    }
  }
}

TEST(Collectives, UnevenBlocksRefuseWrongCounts) {
  Communicator& comm = world();
  std::vector<float> data(4);
  expect_error_naming("reduce_scatter_async", [&] {
    comm.reduce_scatter_async(data.data(), std::vector<std::int64_t>(comm.world_size() + 1, 1),
                              ReduceOp::kSum);
  });
  expect_error_naming("gather", [&] {
    comm.gather(data.data(), data.data(), std::vector<std::int64_t>(comm.world_size(), -1), 0);
  });
}

TEST(Collectives, BarrierWaitsForTheLastRank) {
  Communicator& comm = world();
  comm.barrier();  // start together
  const auto start = std::chrono::steady_clock::now();
  if (comm.rank() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(300));
  comm.barrier();
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // Nobody leaves the barrier before rank 0 entered it, 300 ms in (margin for clock jitter).
  EXPECT_GE(waited, 0.25) << "rank " << comm.rank();
}

TEST(Collectives, ManyAsyncAllReducesCompleteInOrder) {
  Communicator& comm = world();
  const int r = comm.rank(), n = comm.world_size();
  constexpr int kInFlight = 64;
  std::vector<std::vector<float>> buffers(kInFlight);
  std::vector<std::unique_ptr<Work>> works;
  for (int k = 0; k < kInFlight; ++k) {
    buffers[k].assign(static_cast<std::size_t>(100 + 37 * k), static_cast<float>(r + k));
    works.push_back(comm.all_reduce_async(
        buffers[k].data(), static_cast<std::int64_t>(buffers[k].size()), ReduceOp::kSum));
  }
  for (int k = 0; k < kInFlight; ++k) {
    works[k]->wait();
    EXPECT_TRUE(works[k]->test());
    const float expected = n * (n - 1) / 2.0f + static_cast<float>(n * k);
    for (const float v : buffers[k]) {
      if (v != expected) {
        ADD_FAILURE() << "bucket " << k << ": " << v << ", expected " << expected;
        break;
      }
    }
    EXPECT_GT(works[k]->start_time(), 0.0);
    EXPECT_LE(works[k]->start_time(), works[k]->end_time()) << k;
    // One communication thread runs them in issue order: each ends before the next starts.
    if (k > 0) {
      EXPECT_LE(works[k - 1]->end_time(), works[k]->start_time()) << k;
    }
  }
}

TEST(Collectives, DestroyingWorkWaitsForIt) {
  Communicator& comm = world();
  std::vector<float> data(100003, 1.0f);
  { auto work = comm.all_reduce_async(data.data(), 100003, ReduceOp::kSum); }
  for (const float v : data) {
    if (v != static_cast<float>(comm.world_size())) {
      ADD_FAILURE() << v;
      break;
    }
  }
}

TEST(Collectives, InvalidArgumentsNameTheOperation) {
  Communicator& comm = world();
  float f = 0.0f;
  double d = 0.0;
  expect_error_naming("all_reduce", [&] { comm.all_reduce(&f, -1, ReduceOp::kSum); });
  expect_error_naming("all_reduce", [&] { comm.all_reduce_async(&f, -1, ReduceOp::kMax); });
  expect_error_naming("all_reduce", [&] { comm.all_reduce(&d, -1, ReduceOp::kSum); });
  expect_error_naming("all_reduce",
                      [&] { comm.all_reduce(static_cast<float*>(nullptr), 3, ReduceOp::kSum); });
  expect_error_naming("broadcast", [&] { comm.broadcast(&f, -1, 0); });
  expect_error_naming("broadcast", [&] { comm.broadcast(&f, 4, comm.world_size()); });
  expect_error_naming("broadcast", [&] { comm.broadcast(&f, 4, -1); });
  expect_error_naming("reduce_scatter", [&] { comm.reduce_scatter(&f, -1, ReduceOp::kSum); });
  // The communicator still works after rejected calls (they never reached MPI).
  float one = 1.0f;
  comm.all_reduce(&one, 1, ReduceOp::kSum);
  EXPECT_EQ(one, static_cast<float>(comm.world_size()));
}

}  // namespace
}  // namespace dpt::comm

namespace dpt::comm {
namespace {

// --check-collectives: a collective whose size differs on one rank fails on every rank with an
// error naming both sides, instead of a crash or hang inside MPI; matching ones pass.
TEST(Collectives, CheckCollectivesNamesBothSidesOfAMismatch) {
  Communicator& comm = dpt::test::world();
  if (comm.world_size() < 2) GTEST_SKIP() << "needs 2 ranks";
  comm.set_check_collectives(true);
  {
    const LabelScope label(comm, {"test bucket", 5, 9});
    std::vector<float> same(16, 1.0f);
    comm.all_reduce(same.data(), 16, ReduceOp::kSum);
    EXPECT_EQ(same[0], static_cast<float>(comm.world_size()));
    // An all-gather may carry a different length on each rank.
    const auto strings = comm.all_gather(std::string(static_cast<std::size_t>(comm.rank()), 'x'));
    EXPECT_EQ(strings.size(), static_cast<std::size_t>(comm.world_size()));
    const std::int64_t count = comm.rank() == 1 ? 3 : 4;
    std::vector<float> values(4, 1.0f);
    try {
      comm.all_reduce(values.data(), count, ReduceOp::kSum);
      ADD_FAILURE() << "no error for a mismatched all-reduce";
    } catch (const dpt::Error& e) {
      const std::string text = e.what();
      EXPECT_NE(
          text.find("collectives differ between ranks (--check-collectives): rank 0 issues #"),
          std::string::npos)
          << text;
      EXPECT_NE(text.find("all-reduce of 4 floats (test bucket 5, step 9); rank 1 issues #"),
                std::string::npos)
          << text;
      EXPECT_NE(text.find("all-reduce of 3 floats (test bucket 5, step 9)"), std::string::npos)
          << text;
    }
  }
  comm.set_check_collectives(false);
  comm.barrier();
}

// The flight record lists this rank's collectives with their labels, in issue order.
TEST(Collectives, FlightRecordNamesLabelledCollectives) {
  Communicator& comm = dpt::test::world();
  if (comm.backend() != "mpi") GTEST_SKIP() << "the world of one keeps no flight record";
  {
    const LabelScope label(comm, {"record test", -1, 77});
    double value = 1.0;
    comm.all_reduce(&value, 1, ReduceOp::kSum);
  }
  comm.barrier();
  const std::string record = comm.flight_record(2);
  const auto reduce = record.find("all-reduce of 1 8-byte value (record test, step 77): started");
  const auto barrier = record.find("barrier: started");
  EXPECT_NE(reduce, std::string::npos) << record;
  EXPECT_NE(barrier, std::string::npos) << record;
  EXPECT_LT(reduce, barrier) << record;
}

}  // namespace
}  // namespace dpt::comm
