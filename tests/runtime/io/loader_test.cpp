// SPDX-License-Identifier: MIT
// The loader's ordering and sharding contract (loader.h), normalisation, resume, shutdown and
// error propagation, and the epoch permutation.
#include "runtime/io/loader.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <numeric>
#include <thread>

#include "runtime/io/loader_testing.h"
#include "runtime/timer.h"
#include "testing/test_util.h"

namespace dpt::io {
namespace {

// Installs a loader fault hook for one test and removes it even when an assertion fails first.
class ScopedFaultHook {
 public:
  explicit ScopedFaultHook(test_hooks::LoaderFaultHook hook) {
    test_hooks::set_loader_fault_hook(hook);
  }
  ScopedFaultHook(const ScopedFaultHook&) = delete;
  ScopedFaultHook& operator=(const ScopedFaultHook&) = delete;
  ~ScopedFaultHook() { test_hooks::set_loader_fault_hook(nullptr); }
};

constexpr std::int64_t kSamples = 103;  // prime: no batch size divides it
constexpr float kMean = 0.25f;
constexpr float kStd = 0.5f;

// Sample i has pixel 0 == i (so batches can be decoded) and label i % 7.
class LoaderTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new dpt::test::TempDir();
    SplitData train, test;
    for (std::int64_t i = 0; i < kSamples; ++i) {
      train.labels.push_back(static_cast<std::int32_t>(i % 7));
      for (int k = 0; k < 6; ++k) train.images.push_back(static_cast<std::uint8_t>((i + 40 * k) % 256));
    }
    test.labels = {1};
    test.images.assign(6, 0);
    DatasetMeta meta;
    meta.num_classes = 7;
    meta.mean = kMean;
    meta.std = kStd;
    const std::string path = (*dir_ / "loader.h5").string();
    write_dataset(path, 1, 2, 3, meta, train, test);
    data_ = new DatasetSplit(DatasetSplit::load(path, "train"));
  }
  static void TearDownTestSuite() {
    delete data_;
    delete dir_;
  }

  static std::int64_t decode(const Batch& batch, std::int64_t k) {
    const float x = batch.inputs.data<float>()[k * 6];
    return std::lround((x * kStd + kMean) * 255.0f);
  }
  // Every batch of a run as the list of sample indices it holds.
  static std::vector<std::vector<std::int64_t>> drain(Loader& loader) {
    std::vector<std::vector<std::int64_t>> out;
    while (std::optional<Batch> batch = loader.next()) {
      std::vector<std::int64_t> ids;
      for (std::int64_t k = 0; k < batch->labels.numel(); ++k) ids.push_back(decode(*batch, k));
      out.push_back(ids);
    }
    return out;
  }

  static dpt::test::TempDir* dir_;
  static DatasetSplit* data_;
};
dpt::test::TempDir* LoaderTest::dir_ = nullptr;
DatasetSplit* LoaderTest::data_ = nullptr;

TEST(EpochPermutation, IsAPermutation) {
  for (std::int64_t n : {0, 1, 2, 7, 1000}) {
    std::vector<std::int64_t> p = epoch_permutation(n, 42, 3);
    ASSERT_EQ(static_cast<std::int64_t>(p.size()), n);
    std::sort(p.begin(), p.end());
    std::vector<std::int64_t> iota(static_cast<std::size_t>(n));
    std::iota(iota.begin(), iota.end(), 0);
    EXPECT_EQ(p, iota) << "n=" << n;
  }
}

TEST(EpochPermutation, DeterministicPerSeedAndEpoch) {
  EXPECT_EQ(epoch_permutation(500, 7, 0), epoch_permutation(500, 7, 0));
  EXPECT_EQ(epoch_permutation(500, 7, 9), epoch_permutation(500, 7, 9));
  EXPECT_NE(epoch_permutation(500, 7, 0), epoch_permutation(500, 7, 1));
  EXPECT_NE(epoch_permutation(500, 7, 0), epoch_permutation(500, 8, 0));
  // The high 32 bits of the epoch are part of the key.
  EXPECT_NE(epoch_permutation(500, 7, 1), epoch_permutation(500, 7, 1 + (std::int64_t{1} << 32)));
}

TEST(EpochPermutation, RoughlyUniform) {
  // All 6 orders of 3 elements over 6000 epochs: each expected 1000 times (sd ~ 29).
  std::map<std::vector<std::int64_t>, int> counts;
  for (std::int64_t epoch = 0; epoch < 6000; ++epoch) ++counts[epoch_permutation(3, 1, epoch)];
  ASSERT_EQ(counts.size(), 6u);
  for (const auto& [order, count] : counts) EXPECT_NEAR(count, 1000, 150);
}

TEST_F(LoaderTest, StepsPerEpoch) {
  LoaderOptions train{.global_batch = 10, .epochs = 1};
  EXPECT_EQ(Loader(*data_, train).steps_per_epoch(), 10);  // floor(103 / 10)
  LoaderOptions eval{.global_batch = 10, .shuffle = false, .drop_last = false};
  EXPECT_EQ(Loader(*data_, eval).steps_per_epoch(), 11);   // ceil(103 / 10)
  LoaderOptions exact{.global_batch = 103};
  EXPECT_EQ(Loader(*data_, exact).steps_per_epoch(), 1);
}

TEST_F(LoaderTest, ShardsAreContiguousRunsOfTheGlobalBatch) {
  for (const bool drop_last : {true, false}) {
    for (const std::int64_t global_batch : {8, 10, 13}) {
      const std::int64_t steps = drop_last ? kSamples / global_batch
                                           : (kSamples + global_batch - 1) / global_batch;
      for (int world = 1; world <= 4; ++world) {
        SCOPED_TRACE(::testing::Message() << "B=" << global_batch << " W=" << world
                                          << " drop_last=" << drop_last);
        const std::vector<std::int64_t> order = epoch_permutation(kSamples, 5, 2);
        std::vector<std::vector<std::vector<std::int64_t>>> per_rank;
        for (int rank = 0; rank < world; ++rank) {
          Loader loader(*data_, {.global_batch = global_batch, .rank = rank, .world_size = world,
                                 .drop_last = drop_last, .seed = 5, .first_epoch = 2});
          per_rank.push_back(drain(loader));
          ASSERT_EQ(static_cast<std::int64_t>(per_rank.back().size()), steps);  // equal on all ranks
        }
        for (std::int64_t s = 0; s < steps; ++s) {
          std::vector<std::int64_t> joined;
          for (int rank = 0; rank < world; ++rank) {
            const auto& part = per_rank[static_cast<std::size_t>(rank)][static_cast<std::size_t>(s)];
            joined.insert(joined.end(), part.begin(), part.end());
          }
          const std::int64_t end = std::min(kSamples, (s + 1) * global_batch);
          const std::vector<std::int64_t> expected(order.begin() + s * global_batch,
                                                   order.begin() + end);
          ASSERT_EQ(joined, expected) << "step " << s;  // disjoint, complete, in order
        }
      }
    }
  }
}

TEST_F(LoaderTest, BatchMetadataAndEvalOrder) {
  Loader loader(*data_, {.global_batch = 10, .rank = 1, .world_size = 3, .shuffle = false,
                         .drop_last = false, .first_epoch = 4});
  std::int64_t step = 0;
  while (std::optional<Batch> batch = loader.next()) {
    EXPECT_EQ(batch->epoch, 4);
    EXPECT_EQ(batch->step_in_epoch, step);
    const std::int64_t global = std::min<std::int64_t>(10, kSamples - step * 10);
    const std::int64_t first = step * 10 + global * 1 / 3;
    EXPECT_EQ(batch->first_position, first);
    EXPECT_EQ(batch->inputs.shape(), (Shape{global * 2 / 3 - global / 3, 1, 2, 3}));
    for (std::int64_t k = 0; k < batch->labels.numel(); ++k) {
      EXPECT_EQ(decode(*batch, k), first + k);  // sequential order without shuffle
      EXPECT_EQ(batch->labels.data<std::int32_t>()[k], (first + k) % 7);
    }
    ++step;
  }
  EXPECT_EQ(step, 11);
}

TEST_F(LoaderTest, TinyLastEvalBatchLeavesSomeRanksEmptyButSameStepCount) {
  // 103 = 10 * 10 + 3: the last global batch has 3 samples for 4 ranks.
  Loader loader(*data_, {.global_batch = 10, .rank = 0, .world_size = 4, .shuffle = false,
                         .drop_last = false});
  const auto batches = drain(loader);
  ASSERT_EQ(batches.size(), 11u);
  EXPECT_TRUE(batches.back().empty());
}

TEST_F(LoaderTest, NormalisesPixelsAndFillsLabels) {
  Loader loader(*data_, {.global_batch = kSamples, .shuffle = false});
  const std::optional<Batch> batch = loader.next();
  ASSERT_TRUE(batch);
  EXPECT_EQ(batch->inputs.dtype(), DType::kF32);
  EXPECT_EQ(batch->labels.dtype(), DType::kI32);
  for (std::int64_t i = 0; i < kSamples; ++i) {
    for (int k = 0; k < 6; ++k) {
      const auto p = static_cast<float>(data_->image(i)[k]);
      ASSERT_EQ(batch->inputs.data<float>()[i * 6 + k], (p / 255.0f - kMean) / kStd);
    }
    ASSERT_EQ(batch->labels.data<std::int32_t>()[i], data_->label(i));
  }
  EXPECT_FLOAT_EQ(batch->inputs.data<float>()[0], -0.5f);  // pixel 0 -> (0 - 0.25) / 0.5
  EXPECT_FALSE(loader.next());
}

TEST_F(LoaderTest, FlipMirrorsRowsForAboutHalfTheSamplesWhateverTheSharding) {
  // The same samples flip whether one rank reads the global batch or two ranks read halves.
  LoaderOptions one{.global_batch = 20, .seed = 4, .epochs = 2, .augment_flip = true};
  LoaderOptions plain = one;
  plain.augment_flip = false;
  auto batches_of = [](Loader& loader) {
    std::vector<Batch> out;
    while (std::optional<Batch> batch = loader.next()) out.push_back(std::move(*batch));
    return out;
  };
  Loader flipped(*data_, one), reference(*data_, plain);
  std::vector<Batch> a = batches_of(flipped), r = batches_of(reference);
  ASSERT_EQ(a.size(), r.size());
  const std::int64_t w = data_->width(), numel = data_->sample_numel();
  int flips = 0, samples = 0;
  std::vector<bool> flipped_at;  // per (batch, sample), to compare with the sharded run
  for (std::size_t i = 0; i < a.size(); ++i) {
    for (std::int64_t k = 0; k < a[i].labels.numel(); ++k) {
      const float* x = a[i].inputs.data<float>() + k * numel;
      const float* y = r[i].inputs.data<float>() + k * numel;
      bool same = true, mirrored = true;
      for (std::int64_t p = 0; p < numel; ++p) {
        same = same && x[p] == y[p];
        mirrored = mirrored && x[p] == y[(p / w) * w + (w - 1 - p % w)];
      }
      ASSERT_TRUE(same || mirrored) << "batch " << i << " sample " << k;
      const bool is_flip = !same;
      flipped_at.push_back(is_flip);
      flips += is_flip;
      ++samples;
    }
  }
  EXPECT_GT(flips, samples / 4);
  EXPECT_LT(flips, 3 * samples / 4);
  std::vector<std::vector<Batch>> ranks;
  for (int rank = 0; rank < 2; ++rank) {
    LoaderOptions o = one;
    o.rank = rank;
    o.world_size = 2;
    Loader l(*data_, o);
    ranks.push_back(batches_of(l));
  }
  std::size_t index = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    for (int rank = 0; rank < 2; ++rank) {
      const Batch& b = ranks[static_cast<std::size_t>(rank)][i];
      for (std::int64_t k = 0; k < b.labels.numel(); ++k, ++index) {
        const float* x = b.inputs.data<float>() + k * numel;
        const float* y = a[i].inputs.data<float>() + (b.first_position - a[i].first_position + k) * numel;
        ASSERT_TRUE(std::equal(x, x + numel, y)) << "batch " << i << " rank " << rank;
      }
    }
  }
  EXPECT_EQ(index, flipped_at.size());
}

TEST_F(LoaderTest, ResumeInsideAnEpochMatchesAFreshRun) {
  LoaderOptions fresh{.global_batch = 8, .rank = 1, .world_size = 2, .seed = 11, .epochs = 3};
  Loader full(*data_, fresh);
  auto all = drain(full);
  ASSERT_EQ(all.size(), 3u * 12u);
  LoaderOptions resumed = fresh;
  resumed.first_epoch = 1;
  resumed.first_step_in_epoch = 5;
  resumed.epochs = 2;
  Loader later(*data_, resumed);
  const auto rest = drain(later);
  const std::vector<std::vector<std::int64_t>> expected(all.begin() + 12 + 5, all.end());
  EXPECT_EQ(rest, expected);
}

TEST_F(LoaderTest, DestructorJoinsPromptlyWhenConsumerStopsEarly) {
  const Stopwatch watch;
  {
    Loader loader(*data_, {.global_batch = 4, .epochs = 100000, .prefetch_depth = 3});
    ASSERT_TRUE(loader.next());
  }
  {
    Loader never_read(*data_, {.global_batch = 4, .epochs = 100000});
  }
  EXPECT_LT(watch.elapsed_ms(), 2000.0);
}

TEST_F(LoaderTest, ProducerErrorSurfacesFromNext) {
  const ScopedFaultHook hook([](std::int64_t epoch, std::int64_t step) {
    DPT_CHECK_KIND(ErrorKind::kIo, !(epoch == 1 && step == 2), "injected read failure");
  });
  {
    Loader loader(*data_, {.global_batch = 10, .epochs = 3});
    int served = 0;
    try {
      while (loader.next()) ++served;
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kIo);
      EXPECT_NE(std::string(e.what()).find("injected read failure"), std::string::npos);
    }
    EXPECT_EQ(served, 10 + 2);  // everything made before the failure is still served, in order
    EXPECT_THROW(loader.next(), Error);  // and it keeps failing
  }
}

TEST_F(LoaderTest, WaitTimeAccumulates) {
  const ScopedFaultHook hook([](std::int64_t, std::int64_t) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  });
  {
    Loader loader(*data_, {.global_batch = 25, .prefetch_depth = 1});
    std::size_t count = drain(loader).size();
    EXPECT_EQ(count, 4u);
    EXPECT_GT(loader.wait_ms(), 40.0);
  }
}

TEST_F(LoaderTest, RejectsBadOptions) {
  auto invalid = [&](LoaderOptions o) {
    try {
      Loader loader(*data_, o);
    } catch (const Error& e) {
      return e.kind() == ErrorKind::kInvalidArgument;
    }
    return false;
  };
  EXPECT_TRUE(invalid({.global_batch = 10, .rank = 2, .world_size = 2}));
  EXPECT_TRUE(invalid({.global_batch = 3, .world_size = 4}));
  EXPECT_TRUE(invalid({.global_batch = 200}));  // drop_last and no full batch
  EXPECT_TRUE(invalid({.global_batch = 10, .first_step_in_epoch = 11}));
  EXPECT_TRUE(invalid({.global_batch = 10, .prefetch_depth = 0}));
}

}  // namespace
}  // namespace dpt::io
