// SPDX-License-Identifier: MIT
// The NCCL communicator (comm::make_device_communicator over the MPI world, one GPU per rank; see
// gpu_mpi_test_main.cpp) under mpiexec at 1 and 2 ranks:
//  - every collective on device memory with closed-form answers from rank-dependent values, on odd
//    sizes (1, 7, 1023, 2^20 + 3): all_reduce_async sum/max/min (also several in flight, and
//    ordered against kernels queued before and after), broadcast from the first and the last rank
//    (floats and odd byte counts), reduce_scatter sum/max, all_reduce of doubles (values a float
//    cannot hold) and of bf16 (--grad-reduce bf16); the same calls on host memory go to the host communicator;
//  - the exact sum of device shards (Note [Exact sum on the GPU]): bitwise LocalCommunicator's sum
//    of every rank's shards on the host, for counts that do and do not divide by the world size,
//    1 and 0, chunks holding NaN, infinities, only zeros or only subnormals, more shards than one
//    launch takes, the output over a shard or apart, several sums in flight, ordered against the
//    kernels queued before and after;
//  - DataParallel over it: N ranks with B/N samples of a global batch each hold, after finish(),
//    the gradients one rank computes on the whole batch (1e-4 of the largest magnitude), bit for
//    bit the same on every rank, for several bucket layouts and with accumulation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iomanip>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "comm/local_communicator.h"
#include "comm/nccl/nccl_communicator.h"
#include "gpu_test_util.h"
#include "testing/exact_sum_cases.h"
#include "runtime/dtype.h"
#include "runtime/error.h"
#include "kernels/ops.h"
#include "nn/models.h"
#include "nn/parallel/data_parallel.h"
#include "testing/test_util.h"

namespace dpt::comm {
namespace {

const std::vector<std::int64_t> kCounts = {1, 7, 1023, (std::int64_t{1} << 20) + 3};

Device gpu() { return Device::cuda(test::gpu_device()); }

const char* name_of(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return "sum";
    case ReduceOp::kMax: return "max";
    case ReduceOp::kMin: return "min";
  }
  return "?";
}

// Element i of rank r: small integers and halves, so every sum is exact in float. The sign of
// (i % 13 - 6) makes max and min come from the first rank for some elements, the last for others.
float value(int rank, std::int64_t i) {
  return static_cast<float>(i % 13 - 6) * static_cast<float>(rank + 1) + 0.5f * static_cast<float>(rank);
}

float combine(ReduceOp op, float a, float b) {
  switch (op) {
    case ReduceOp::kSum: return a + b;
    case ReduceOp::kMax: return std::max(a, b);
    case ReduceOp::kMin: return std::min(a, b);
  }
  return 0.0f;
}

float reduced(ReduceOp op, int world_size, std::int64_t i) {
  float result = value(0, i);
  for (int r = 1; r < world_size; ++r) result = combine(op, result, value(r, i));
  return result;
}

Tensor values_on_gpu(int rank, std::int64_t count, float factor = 1.0f) {
  std::vector<float> host(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i) host[static_cast<std::size_t>(i)] = value(rank, i) * factor;
  return Tensor::from_vector({count}, host).to(gpu());
}

// got[i] == want(i) for every i, with the first mismatch and the number of them.
template <typename Want>
::testing::AssertionResult all_equal(const std::vector<float>& got, Want&& want) {
  std::size_t mismatches = 0, first = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (got[i] != want(static_cast<std::int64_t>(i)) && mismatches++ == 0) first = i;
  }
  if (mismatches == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << mismatches << " of " << got.size()
                                       << " elements wrong; first at " << first << ": got "
                                       << got[first] << ", want "
                                       << want(static_cast<std::int64_t>(first));
}

class Nccl : public ::testing::Test {
 protected:
  Communicator& comm_ = test::device_world();
  const int rank_ = comm_.rank();
  const int size_ = comm_.world_size();
  Context ctx_ = Context::create(gpu(), 1);
};

TEST_F(Nccl, IsTheNcclBackendOverTheHostRanks) {
  EXPECT_EQ(comm_.backend(), "nccl");
  EXPECT_GE(size_, 1);
  EXPECT_LT(rank_, size_);
  EXPECT_LT(comm_.local_rank(), comm_.local_size());
  EXPECT_EQ(test::gpu_device(), comm_.local_rank() % cuda_device_count());
}

TEST_F(Nccl, AllReduceAsyncSumMaxMinOnDeviceMemory) {
  for (const ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kMin}) {
    for (const std::int64_t count : kCounts) {
      SCOPED_TRACE(::testing::Message() << name_of(op) << ", " << count << " floats");
      Tensor t = values_on_gpu(rank_, count);
      std::unique_ptr<Work> work = comm_.all_reduce_async(t.data<float>(), count, op);
      ASSERT_NE(work, nullptr);
      work->wait();
      EXPECT_TRUE(work->test());
      EXPECT_TRUE(all_equal(t.to_vector(), [&](std::int64_t i) { return reduced(op, size_, i); }));
      // The blocking form.
      Tensor u = values_on_gpu(rank_, count);
      comm_.all_reduce(u.data<float>(), count, op);
      EXPECT_TRUE(all_equal(u.to_vector(), [&](std::int64_t i) { return reduced(op, size_, i); }))
          << "blocking all_reduce";
    }
  }
}

// --grad-reduce bf16 over NCCL (ncclBfloat16): rank r holds (r + 1) * (i % 7) - 3, small
// integers whose partial sums stay within bf16's exact integers (|sum| <= 256) for up to 9 ranks;
// they come out as their closed-form sum on every rank, on device memory of odd sizes.
TEST_F(Nccl, AllReduceOfBf16OnDeviceMemorySumsExactly) {
  ASSERT_LE(size_, 9) << "partial sums past 256 are not exact in bf16: change the values";
  for (const std::int64_t count : kCounts) {
    SCOPED_TRACE(::testing::Message() << count << " bf16 values");
    std::vector<BFloat16> host(static_cast<std::size_t>(count));
    for (std::int64_t i = 0; i < count; ++i) {
      host[static_cast<std::size_t>(i)] = to_bf16(static_cast<float>((rank_ + 1) * (i % 7) - 3));
    }
    Tensor t = Tensor::empty({count}, DType::kBF16);
    std::memcpy(t.raw_data(), host.data(), host.size() * sizeof(BFloat16));
    Tensor on_gpu = t.to(gpu());
    comm_.all_reduce_bf16_async(on_gpu.data<BFloat16>(), count)->wait();
    const Tensor back = on_gpu.to(Device::cpu());
    const BFloat16* got = back.data<BFloat16>();
    std::int64_t wrong = 0;
    for (std::int64_t i = 0; i < count; ++i) {
      float want = 0.0f;
      for (int r = 0; r < size_; ++r) want += static_cast<float>((r + 1) * (i % 7) - 3);
      if (to_float(got[i]) != want && wrong++ == 0) {
        ADD_FAILURE() << "element " << i << ": " << to_float(got[i]) << ", expected " << want;
      }
    }
    EXPECT_EQ(wrong, 0);
  }
}

TEST_F(Nccl, SeveralAllReducesInFlightCompleteInOrder) {
  // As DataParallel issues its buckets: all launched, then waited for in order.
  std::vector<Tensor> buffers;
  std::vector<std::unique_ptr<Work>> works;
  for (const std::int64_t count : kCounts) buffers.push_back(values_on_gpu(rank_, count));
  for (Tensor& b : buffers) works.push_back(comm_.all_reduce_async(b.data<float>(), b.numel(), ReduceOp::kSum));
  for (std::size_t k = 0; k < works.size(); ++k) {
    works[k]->wait();
    EXPECT_TRUE(all_equal(buffers[k].to_vector(),
                          [&](std::int64_t i) { return reduced(ReduceOp::kSum, size_, i); }))
        << "buffer " << k << " (" << buffers[k].numel() << " floats)";
  }
}

TEST_F(Nccl, AllReduceIsOrderedAfterEarlierKernelsAndBeforeLaterOnes) {
  // Note [NCCL stream ordering]: the values are only complete once a kernel queued just before
  // the call has run, and a kernel queued after wait() must see the reduced values. No
  // synchronisation in between: a missing event shows up as a wrong sum (most likely on the
  // large buffer).
  for (const std::int64_t count : kCounts) {
    SCOPED_TRACE(::testing::Message() << count << " floats");
    Tensor t = values_on_gpu(rank_, count, 0.5f);  // halves of the values: exact
    kernels::scale(ctx_, t, 2.0f);
    std::unique_ptr<Work> work = comm_.all_reduce_async(t.data<float>(), count, ReduceOp::kSum);
    work->wait();
    kernels::scale(ctx_, t, 4.0f);
    EXPECT_TRUE(all_equal(t.to_vector(),
                          [&](std::int64_t i) { return 4.0f * reduced(ReduceOp::kSum, size_, i); }));
  }
}

TEST_F(Nccl, BroadcastFromFirstAndLastRank) {
  for (const int root : {0, size_ - 1}) {
    for (const std::int64_t count : kCounts) {
      SCOPED_TRACE(::testing::Message() << "root " << root << ", " << count << " floats");
      Tensor t = values_on_gpu(rank_, count);
      comm_.broadcast(t.raw_data(), count * static_cast<std::int64_t>(sizeof(float)), root);
      EXPECT_TRUE(all_equal(t.to_vector(), [&](std::int64_t i) { return value(root, i); }));
    }
    // Byte counts that are not a multiple of 4.
    for (const std::int64_t bytes : {std::int64_t{1}, std::int64_t{7}, std::int64_t{1023}}) {
      SCOPED_TRACE(::testing::Message() << "root " << root << ", " << bytes << " bytes");
      Tensor host = Tensor::empty({bytes}, DType::kU8);
      for (std::int64_t i = 0; i < bytes; ++i) {
        host.data<std::uint8_t>()[i] = static_cast<std::uint8_t>(i * 31 + rank_ * 7);
      }
      // One more byte after the range: a broadcast of `bytes` must not touch it.
      Tensor padded = Tensor::empty({bytes + 1}, DType::kU8);
      std::memcpy(padded.raw_data(), host.raw_data(), static_cast<std::size_t>(bytes));
      padded.data<std::uint8_t>()[bytes] = 0xA5;
      Tensor t = padded.to(gpu());
      comm_.broadcast(t.raw_data(), bytes, root);
      const Tensor back = t.to(Device::cpu());
      std::int64_t wrong = 0;
      for (std::int64_t i = 0; i < bytes; ++i) {
        wrong += back.data<std::uint8_t>()[i] != static_cast<std::uint8_t>(i * 31 + root * 7);
      }
      EXPECT_EQ(wrong, 0);
      EXPECT_EQ(back.data<std::uint8_t>()[bytes], 0xA5) << "the byte after the range changed";
    }
  }
}

TEST_F(Nccl, ReduceScatterSumAndMax) {
  for (const ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax}) {
    for (const std::int64_t block : kCounts) {
      SCOPED_TRACE(::testing::Message() << name_of(op) << ", blocks of " << block << " floats");
      Tensor t = values_on_gpu(rank_, block * size_);
      comm_.reduce_scatter(t.data<float>(), block, op);
      const std::vector<float> all = t.to_vector();
      const std::vector<float> mine(all.begin() + rank_ * block, all.begin() + (rank_ + 1) * block);
      EXPECT_TRUE(all_equal(mine, [&](std::int64_t j) { return reduced(op, size_, rank_ * block + j); }));
    }
  }
}

// Uneven blocks on device memory (a sharded optimizer): every rank's block r is reduced onto
// rank r, gathered back to everyone, gathered onto and scattered from a root; blocks of 0, 1
// and 1000 floats by rank.
TEST_F(Nccl, UnevenBlocksOnDeviceMemory) {
  std::vector<std::int64_t> counts(static_cast<std::size_t>(size_));
  for (int r = 0; r < size_; ++r)
    counts[static_cast<std::size_t>(r)] = (r % 3 == 1) ? 0 : 1 + 999 * (r % 2);
  std::int64_t total = 0, begin = 0;
  for (int r = 0; r < size_; ++r) {
    if (r == rank_) begin = total;
    total += counts[static_cast<std::size_t>(r)];
  }
  const std::int64_t mine = counts[static_cast<std::size_t>(rank_)];
  Tensor t = values_on_gpu(rank_, total);
  comm_.reduce_scatter_async(t.data<float>(), counts, ReduceOp::kSum)->wait();
  std::vector<float> all = t.to_vector();
  for (std::int64_t i = begin; i < begin + mine; ++i) {
    ASSERT_EQ(all[static_cast<std::size_t>(i)], reduced(ReduceOp::kSum, size_, i)) << i;
  }
  Tensor g = values_on_gpu(rank_, total);  // each rank's own block is what everyone gets
  comm_.all_gather_async(g.data<float>(), counts)->wait();
  all = g.to_vector();
  std::int64_t at = 0;
  for (int r = 0; r < size_; ++r) {
    for (std::int64_t i = 0; i < counts[static_cast<std::size_t>(r)]; ++i, ++at) {
      ASSERT_EQ(all[static_cast<std::size_t>(at)], value(r, at)) << "block " << r;
    }
  }
  const int root = size_ - 1;
  Tensor local = Tensor::view_of(values_on_gpu(rank_, total), begin, {mine}).clone();
  Tensor gathered = values_on_gpu(-1, total);
  comm_.gather(local.data<float>(), gathered.data<float>(), counts, root);
  if (rank_ == root) {
    all = gathered.to_vector();
    at = 0;
    for (int r = 0; r < size_; ++r) {
      for (std::int64_t i = 0; i < counts[static_cast<std::size_t>(r)]; ++i, ++at) {
        ASSERT_EQ(all[static_cast<std::size_t>(at)], value(r, at)) << "gather, block " << r;
      }
    }
  }
  Tensor back = values_on_gpu(-1, std::max<std::int64_t>(mine, 1));
  comm_.scatter(gathered.data<float>(), back.data<float>(), counts, root);
  const std::vector<float> received = back.to_vector();
  for (std::int64_t i = 0; i < mine; ++i) {
    ASSERT_EQ(received[static_cast<std::size_t>(i)], value(rank_, begin + i)) << "scatter";
  }
}

// i * 2^-40 + r: exact in double, not in float (a reduction done in float shows).
double double_value(int rank, std::int64_t i) { return std::ldexp(static_cast<double>(i), -40) + rank; }

TEST_F(Nccl, AllReduceOfDoublesOnDeviceMemory) {
  for (const ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kMin}) {
    for (const std::int64_t count : kCounts) {
      SCOPED_TRACE(::testing::Message() << name_of(op) << ", " << count << " doubles");
      std::vector<double> host(static_cast<std::size_t>(count));
      for (std::int64_t i = 0; i < count; ++i) host[static_cast<std::size_t>(i)] = double_value(rank_, i);
      // Device memory for `count` doubles: a float tensor of twice the elements.
      Tensor staging = Tensor::empty({2 * count});
      std::memcpy(staging.raw_data(), host.data(), host.size() * sizeof(double));
      Tensor t = staging.to(gpu());
      comm_.all_reduce(static_cast<double*>(t.raw_data()), count, op);
      const Tensor back = t.to(Device::cpu());
      std::vector<double> got(host.size());
      std::memcpy(got.data(), back.raw_data(), got.size() * sizeof(double));
      std::size_t wrong = 0, first = 0;
      double want_first = 0.0;
      for (std::int64_t i = 0; i < count; ++i) {
        const double base = std::ldexp(static_cast<double>(i), -40);
        const double want = op == ReduceOp::kSum ? size_ * base + size_ * (size_ - 1) / 2.0
                            : op == ReduceOp::kMax ? base + (size_ - 1)
                                                   : base;
        if (got[static_cast<std::size_t>(i)] != want && wrong++ == 0) {
          first = static_cast<std::size_t>(i);
          want_first = want;
        }
      }
      EXPECT_EQ(wrong, 0u) << "first at " << first << ": got " << std::setprecision(17)
                           << got[first] << ", want " << want_first;
    }
  }
}

// ---- exact sum ---------------------------------------------------------------------------


// Chunk layouts of `count` values: about 256 (as DataParallel cuts), one chunk, pairs (so that the
// special chunks exist at small counts; up to 4096 values).
std::vector<std::vector<std::int64_t>> exact_layouts(std::int64_t count) {
  std::vector<std::vector<std::int64_t>> layouts(1);
  for (std::int64_t s = 0; s < count; s += 256 + s % 3) layouts.back().push_back(s);
  layouts.push_back({0});
  if (count <= 4096) {
    layouts.emplace_back();
    for (std::int64_t s = 0; s < count; s += 2) layouts.back().push_back(s);
  }
  return layouts;
}

// One exact sum as every rank sees it: all `total` shards on the host, this rank's share of them
// on the device, and the one-rank host sum of all of them (the shards doubled: the device shards
// are doubled by a kernel queued just before the sum, see ExactSum below).
struct ExactCase {
  std::int64_t count = 0;
  std::vector<std::int64_t> starts;
  int total = 0;
  std::vector<Tensor> device;  // this rank's shards, undoubled
  std::vector<float> expected;

  ExactCase(std::int64_t n, std::vector<std::int64_t> layout, int shards, int rank, int size)
      : count(n), starts(std::move(layout)), total(shards) {
    std::vector<std::vector<float>> all;
    for (int s = 0; s < total; ++s) all.push_back(test::exact_shard_with_specials(s, count, starts, total));
    const int per_rank = total / size;
    for (int s = rank * per_rank; s < (rank + 1) * per_rank; ++s) {
      device.push_back(Tensor::from_vector({count}, all[static_cast<std::size_t>(s)]).to(gpu()));
    }
    ExactSumBucket one;
    for (auto& shard : all) {
      for (float& v : shard) v *= 2.0f;
      one.shards.push_back(shard.data());
    }
    expected.resize(static_cast<std::size_t>(count));
    one.out = expected.data();
    one.count = count;
    one.chunk_starts = starts;
    one.total_shards = total;
    LocalCommunicator().exact_sum_async(one)->wait();
  }

  // Doubles the device shards on the compute stream (not waited for) and starts the exact sum
  // into `out` (a device buffer of count floats, possibly one of the shards).
  std::unique_ptr<Work> start(const Context& ctx, Communicator& comm, float* out) {
    ExactSumBucket bucket;
    for (Tensor& shard : device) {
      kernels::scale(ctx, shard, 2.0f);
      bucket.shards.push_back(shard.data<float>());
    }
    bucket.out = out;
    bucket.count = count;
    bucket.chunk_starts = starts;
    bucket.total_shards = total;
    return comm.exact_sum_async(std::move(bucket));
  }

  ::testing::AssertionResult matches(const Tensor& out) const {
    const std::vector<float> got = out.to_vector();  // on the compute stream: after wait()
    std::size_t differ = 0, first = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
      if (std::memcmp(&got[i], &expected[i], sizeof(float)) != 0 && differ++ == 0) first = i;
    }
    if (got.size() == expected.size() && differ == 0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << differ << " of " << count << " values differ from the one-rank host sum; first at "
           << first << ": got " << got[first] << ", want " << expected[first];
  }
};

TEST_F(Nccl, ExactSumOfDeviceShardsEqualsTheOneRankHostSumBitwise) {
  // 132 shards: 132 or 66 per rank, more than one launch's kShardsPerLaunch (64).
  for (const int total : {12, 132}) {
    ASSERT_EQ(total % size_, 0) << "the suite runs at world sizes dividing 12";
    const std::vector<std::int64_t> counts =
        total == 12 ? std::vector<std::int64_t>{1, 7, 1023, 4096, (std::int64_t{1} << 20) + 3}
                    : std::vector<std::int64_t>{7, 1023};
    for (const std::int64_t count : counts) {
      const auto layouts = exact_layouts(count);
      for (std::size_t l = 0; l < layouts.size(); ++l) {
        // Into the last shard (as DataParallel sums in place) or into a buffer of its own.
        const bool in_place = l % 2 == 0;
        SCOPED_TRACE(::testing::Message() << total << " shards, " << count << " values in "
                                          << layouts[l].size() << " chunks, "
                                          << (in_place ? "in place" : "apart") << ", rank "
                                          << rank_ << " of " << size_);
        ExactCase c(count, layouts[l], total, rank_, size_);
        Tensor apart = Tensor::full({count}, 7.0f, gpu());
        Tensor& out = in_place ? c.device.back() : apart;
        std::unique_ptr<Work> work = c.start(ctx_, comm_, out.data<float>());
        EXPECT_TRUE(work->order_on_device()) << "a device collective orders the compute stream";
        work->wait();
        EXPECT_TRUE(work->test());
        EXPECT_GT(work->duration_ms(), 0.0) << "timed by its events";
        EXPECT_LE(work->start_time(), work->end_time());
        EXPECT_TRUE(c.matches(out));
      }
    }
  }
}

TEST_F(Nccl, SeveralExactSumsInFlightCompleteInOrder) {
  // As DataParallel issues its buckets: all launched, then waited for in order. Growing sizes make
  // each launch replace the scratch while the earlier ones still use it; the second round reuses
  // the cached chunk starts.
  for (int round = 0; round < 2; ++round) {
    std::vector<ExactCase> cases;
    std::vector<Tensor> outs;
    for (const std::int64_t count : {std::int64_t{7}, std::int64_t{1023}, std::int64_t{100003}}) {
      cases.emplace_back(count, exact_layouts(count)[0], 12, rank_, size_);
      outs.push_back(Tensor::full({count}, 7.0f, gpu()));
    }
    std::vector<std::unique_ptr<Work>> works;
    for (std::size_t k = 0; k < cases.size(); ++k) {
      works.push_back(cases[k].start(ctx_, comm_, outs[k].data<float>()));
    }
    for (std::size_t k = 0; k < cases.size(); ++k) {
      works[k]->wait();
      EXPECT_TRUE(cases[k].matches(outs[k])) << "round " << round << ", sum " << k << " ("
                                             << cases[k].count << " values)";
    }
  }
}

TEST_F(Nccl, ExactSumOfNothingAndOfMixedMemory) {
  // Count 0: the host communicator validates it and does nothing; no chunk, no output.
  Tensor shard = Tensor::full({4}, 1.0f, gpu());
  ExactSumBucket none;
  none.shards = {shard.data<float>()};
  none.total_shards = size_;
  comm_.exact_sum_async(none)->wait();
  EXPECT_EQ(shard.to_vector(), std::vector<float>(4, 1.0f));

  // A host shard with a device output is refused on every rank before any collective.
  std::vector<float> host(4, 1.0f);
  ExactSumBucket mixed;
  mixed.shards = {shard.data<float>(), host.data()};
  mixed.out = shard.data<float>();
  mixed.count = 4;
  mixed.chunk_starts = {0};
  mixed.total_shards = 2 * size_;
  try {
    comm_.exact_sum_async(mixed);
    FAIL() << "an exact sum over host and device shards was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument);
    EXPECT_NE(e.message().find("shard 1"), std::string::npos) << e.message();
  }
}

// Communicator::abort (Note [Abort on unwind]): after it a pending collective fails at once when
// waited for, later collectives fail at once, and destruction does not wait. A world of one of
// its own, so the job's communicator stays usable.
TEST_F(Nccl, AbortMakesPendingAndLaterCollectivesFailFast) {
  nccl::NcclCommunicator own(std::make_unique<LocalCommunicator>(), test::gpu_device());
  Tensor buf = Tensor::full({1 << 20}, 1.0f, gpu());
  std::unique_ptr<Work> pending = own.all_reduce_async(buf.data<float>(), buf.numel(), ReduceOp::kSum);
  own.abort();
  try {
    pending->wait();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kComm) << e.what();
  }
  try {
    own.all_reduce(buf.data<float>(), buf.numel(), ReduceOp::kSum);
    FAIL() << "an all-reduce on an aborted communicator returned";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kComm) << e.what();
    EXPECT_NE(e.message().find("aborted"), std::string::npos) << e.message();
  }
  pending.reset();  // returns at once: the communicator is gone
}

TEST_F(Nccl, HostMemoryGoesToTheHostCommunicator) {
  const std::int64_t count = 1023;
  std::vector<float> f(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i) f[static_cast<std::size_t>(i)] = value(rank_, i);
  comm_.all_reduce_async(f.data(), count, ReduceOp::kSum)->wait();
  EXPECT_TRUE(all_equal(f, [&](std::int64_t i) { return reduced(ReduceOp::kSum, size_, i); }))
      << "all_reduce_async";

  std::vector<double> d(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i) d[static_cast<std::size_t>(i)] = double_value(rank_, i);
  comm_.all_reduce(d.data(), count, ReduceOp::kMax);
  for (std::int64_t i = 0; i < count; ++i) {
    ASSERT_EQ(d[static_cast<std::size_t>(i)], std::ldexp(static_cast<double>(i), -40) + (size_ - 1))
        << "double all_reduce, element " << i;
  }

  for (std::int64_t i = 0; i < count; ++i) f[static_cast<std::size_t>(i)] = value(rank_, i);
  comm_.broadcast(f.data(), count * static_cast<std::int64_t>(sizeof(float)), size_ - 1);
  EXPECT_TRUE(all_equal(f, [&](std::int64_t i) { return value(size_ - 1, i); })) << "broadcast";

  std::vector<float> blocks(static_cast<std::size_t>(7 * size_));
  for (std::size_t i = 0; i < blocks.size(); ++i) blocks[i] = value(rank_, static_cast<std::int64_t>(i));
  comm_.reduce_scatter(blocks.data(), 7, ReduceOp::kSum);
  const std::vector<float> mine(blocks.begin() + 7 * rank_, blocks.begin() + 7 * (rank_ + 1));
  EXPECT_TRUE(all_equal(mine, [&](std::int64_t j) { return reduced(ReduceOp::kSum, size_, 7 * rank_ + j); }))
      << "reduce_scatter";

  // The exact sum of host shards: the host communicator's (its own tests cover the values).
  std::vector<float> a(static_cast<std::size_t>(count), 1.5f), b(a);
  ExactSumBucket bucket;
  bucket.shards = {a.data(), b.data()};
  bucket.out = a.data();
  bucket.count = count;
  bucket.chunk_starts = {0};
  bucket.total_shards = 2 * size_;
  comm_.exact_sum_async(bucket)->wait();
  EXPECT_TRUE(all_equal(a, [&](std::int64_t) { return 3.0f * static_cast<float>(size_); }))
      << "exact_sum_async";

  const std::vector<std::string> names = comm_.all_gather("rank " + std::to_string(rank_));
  ASSERT_EQ(names.size(), static_cast<std::size_t>(size_));
  for (int r = 0; r < size_; ++r) EXPECT_EQ(names[static_cast<std::size_t>(r)], "rank " + std::to_string(r));
  comm_.barrier();
}

}  // namespace
}  // namespace dpt::comm

namespace dpt::nn {
namespace {

// Seeds of tests/cuda/cuda_model_test.cpp: Note [Seeds away from ties] there.
constexpr std::uint64_t kInitSeed = 3;
constexpr std::uint64_t kDataSeed = 105;
constexpr std::int64_t kGlobalBatch = 8;

struct Batch {
  Tensor images, labels;
};

Batch global_batch_on(Device device) {
  Tensor images = test::random_tensor({kGlobalBatch, 1, 28, 28}, kDataSeed, -1.0f, 2.0f);
  Tensor labels = Tensor::empty({kGlobalBatch}, DType::kI32);
  for (std::int64_t i = 0; i < kGlobalBatch; ++i) {
    labels.data<std::int32_t>()[i] = static_cast<std::int32_t>((i * 7 + 3) % 10);
  }
  return {images.to(device), labels.to(device)};
}

void forward_backward(const Context& ctx, Sequential& model, const Batch& batch, std::int64_t first,
                      std::int64_t count, bool accumulate) {
  StepInfo info;
  info.first_sample = first;
  info.accumulate_grads = accumulate;
  const Tensor logits = model.forward(ctx, Tensor::rows_of(batch.images, first, count), info);
  Tensor dlogits = Tensor::empty(logits.shape(), DType::kF32, logits.device());
  kernels::softmax_cross_entropy(ctx, logits, Tensor::rows_of(batch.labels, first, count),
                                 &dlogits);
  model.backward(ctx, dlogits, info);
}

std::string bytes_of(const Tensor& t) {
  const std::vector<float> v = t.to_vector();
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

struct Layout {
  const char* name;
  DataParallelOptions options;
};

TEST(NcclDataParallel, NRanksEqualOneRankOnTheWholeBatch) {
  comm::Communicator& world = test::device_world();
  const int r = world.rank(), n = world.world_size();
  if (kGlobalBatch % n != 0) GTEST_SKIP() << "the global batch of " << kGlobalBatch << " does not split over " << n << " ranks";
  const Device device = Device::cuda(test::gpu_device());
  const Context ctx = Context::create(device, 1);
  const Batch batch = global_batch_on(device);
  const std::vector<LayerSpec> layers = reference_model("cnn");
  const Shape sample{1, 28, 28};

  // The 1-rank reference, computed by every rank on the whole batch without communication.
  Sequential reference = build_model(layers, sample, device);
  reference.init_parameters(kInitSeed);
  forward_backward(ctx, reference, batch, 0, kGlobalBatch, false);

  const std::int64_t share = kGlobalBatch / n;
  const std::vector<Layout> layouts = {
      {"automatic", DataParallelOptions::automatic_layout()},
      {"one bucket per parameter", {1e-9, 1e-9, true, 4, /*min_bucket_elements=*/0}},
      {"one bucket", {1e6, 1e6, true, /*min_buckets=*/1}},
      {"default without overlap", {25.0, 1.0, false}},
  };
  for (const Layout& layout : layouts) {
    for (const int micro_steps : {1, 2}) {
      if (share % micro_steps != 0) continue;
      SCOPED_TRACE(::testing::Message() << layout.name << ", " << micro_steps << " micro-step(s), rank "
                                        << r << " of " << n);
      Sequential model = build_model(layers, sample, device);
      model.init_parameters(kInitSeed);
      DataParallel ddp(model, world, layout.options);
      ddp.broadcast_parameters();  // on device memory: NCCL
      EXPECT_TRUE(bytes_of(model.flat_params()) == bytes_of(reference.flat_params()))
          << "broadcast changed parameters that were already equal";
      const std::int64_t micro = share / micro_steps;
      for (int m = 0; m < micro_steps; ++m) {
        ddp.prepare_backward(/*reduce=*/m == micro_steps - 1, /*step=*/0);
        forward_backward(ctx, model, batch, r * share + m * micro, micro, m > 0);
      }
      ddp.finish();  // on a GPU: stream waits only (Note [Device-side finish])
      ddp.complete();
      for (const BucketRecord& record : ddp.records()) {
        EXPECT_GT(record.duration_ms, 0.0) << "bucket " << record.bucket << " timed by its events";
      }
      for (std::size_t p = 0; p < model.parameters().size(); ++p) {
        const Parameter& got = *model.parameters()[p];
        const Tensor want = reference.parameters()[p]->grad.to(Device::cpu());
        double max_abs = 0.0;
        for (const float v : want.to_vector()) max_abs = std::max(max_abs, static_cast<double>(std::abs(v)));
        EXPECT_TRUE(test::all_close(got.grad.to(Device::cpu()), want, 0.0, std::max(1e-4 * max_abs, 1e-30)))
            << "summed gradient of " << got.name;
      }
      // Every rank holds the same bits (NCCL's all-reduce result is the same everywhere).
      const std::vector<std::string> all = world.all_gather(bytes_of(model.flat_grads()));
      for (int k = 1; k < n; ++k) {
        EXPECT_TRUE(all[static_cast<std::size_t>(k)] == all[0]) << "rank " << k << "'s gradients differ from rank 0's";
      }
    }
  }
}

}  // namespace
}  // namespace dpt::nn
