// SPDX-License-Identifier: MIT
// The loader on a text dataset: training windows are a pure function of (seed, epoch, position),
// the same whatever the world size and after a resume; labels are the inputs shifted by one;
// evaluation windows are consecutive.
#include <algorithm>
#include <set>

#include "runtime/io/dataset.h"
#include "runtime/io/loader.h"
#include "testing/test_util.h"

namespace dpt::io {
namespace {

constexpr std::int64_t kTokens = 1000;  // token i == i: a window's first input is its start
constexpr std::int64_t kT = 8;          // 124 windows per epoch

class TokenLoaderTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new dpt::test::TempDir();
    std::vector<char32_t> code_points;
    std::vector<std::uint16_t> tokens;
    for (std::int64_t i = 0; i < kTokens; ++i) {
      code_points.push_back(static_cast<char32_t>(0x100 + i));
      tokens.push_back(static_cast<std::uint16_t>(i));
    }
    const std::string path = (*dir_ / "text.h5").string();
    write_token_dataset(path, Vocabulary::chars(code_points), tokens,
                        std::vector<std::uint16_t>(tokens.begin(), tokens.begin() + 100));
    data_ = new DatasetSplit(DatasetSplit::load(path, "train", 0, kT));
  }
  static void TearDownTestSuite() {
    delete data_;
    delete dir_;
  }

  // The start of every window of every batch, in order; checks the shapes and the labels.
  static std::vector<std::vector<std::int64_t>> drain(Loader& loader) {
    std::vector<std::vector<std::int64_t>> out;
    while (std::optional<Batch> batch = loader.next()) {
      const std::int64_t b = batch->inputs.shape().at(0);
      EXPECT_EQ(batch->inputs.shape(), (Shape{b, kT}));
      EXPECT_EQ(batch->inputs.dtype(), DType::kI32);
      EXPECT_EQ(batch->labels.shape(), Shape{b * kT});
      EXPECT_EQ(batch->labels.dtype(), DType::kI32);
      std::vector<std::int64_t> starts;
      for (std::int64_t k = 0; k < b; ++k) {
        const std::int32_t* in = batch->inputs.data<std::int32_t>() + k * kT;
        const std::int32_t* label = batch->labels.data<std::int32_t>() + k * kT;
        for (std::int64_t i = 0; i < kT; ++i) {
          EXPECT_EQ(in[i], in[0] + i);        // a contiguous window of the corpus
          EXPECT_EQ(label[i], in[i] + 1);     // the next token
        }
        starts.push_back(in[0]);
      }
      out.push_back(starts);
    }
    return out;
  }

  static dpt::test::TempDir* dir_;
  static DatasetSplit* data_;
};
dpt::test::TempDir* TokenLoaderTest::dir_ = nullptr;
DatasetSplit* TokenLoaderTest::data_ = nullptr;

TEST(WindowStart, CoversTheRangeAndDependsOnSeedEpochAndPosition) {
  // n = 12, T = 8: starts in [0, 3]; every one reached, nothing outside.
  std::map<std::int64_t, int> counts;
  for (std::int64_t q = 0; q < 4000; ++q) ++counts[window_start(1, 0, q, 12, 8)];
  ASSERT_EQ(counts.size(), 4u);
  EXPECT_EQ(counts.begin()->first, 0);
  EXPECT_EQ(counts.rbegin()->first, 3);
  for (const auto& [start, count] : counts) EXPECT_NEAR(count, 1000, 150) << start;

  EXPECT_EQ(window_start(7, 3, 11, kTokens, kT), window_start(7, 3, 11, kTokens, kT));
  int same_seed = 0, same_epoch = 0;
  for (std::int64_t q = 0; q < 100; ++q) {
    same_seed += window_start(7, 3, q, kTokens, kT) == window_start(8, 3, q, kTokens, kT);
    same_epoch += window_start(7, 3, q, kTokens, kT) == window_start(7, 4, q, kTokens, kT);
  }
  EXPECT_LT(same_seed, 5);  // ~0.1 expected by chance
  EXPECT_LT(same_epoch, 5);
}

TEST_F(TokenLoaderTest, StepsAndSizeFollowTheWindowCount) {
  EXPECT_EQ(data_->size(), (kTokens - 1) / kT);
  Loader train(*data_, {.global_batch = 10});
  EXPECT_EQ(train.steps_per_epoch(), 12);  // floor(124 / 10)
  Loader eval(*data_, {.global_batch = 10, .shuffle = false, .drop_last = false});
  EXPECT_EQ(eval.steps_per_epoch(), 13);
}

TEST_F(TokenLoaderTest, TrainingWindowsArePureFunctionsOfSeedEpochAndPosition) {
  constexpr std::int64_t kBatch = 12;
  const LoaderOptions base{.global_batch = kBatch, .seed = 9, .first_epoch = 2, .epochs = 2};
  for (int world = 1; world <= 3; ++world) {
    SCOPED_TRACE(::testing::Message() << "world " << world);
    std::vector<std::vector<std::vector<std::int64_t>>> per_rank;
    for (int rank = 0; rank < world; ++rank) {
      LoaderOptions o = base;
      o.rank = rank;
      o.world_size = world;
      Loader loader(*data_, o);
      per_rank.push_back(drain(loader));
    }
    const std::int64_t steps = data_->size() / kBatch;
    ASSERT_EQ(static_cast<std::int64_t>(per_rank[0].size()), 2 * steps);
    for (std::int64_t s = 0; s < 2 * steps; ++s) {
      std::vector<std::int64_t> joined;
      for (int rank = 0; rank < world; ++rank) {
        const auto& part = per_rank[static_cast<std::size_t>(rank)][static_cast<std::size_t>(s)];
        joined.insert(joined.end(), part.begin(), part.end());
      }
      const std::int64_t epoch = 2 + s / steps;
      std::vector<std::int64_t> expected;
      for (std::int64_t q = (s % steps) * kBatch; q < (s % steps + 1) * kBatch; ++q) {
        expected.push_back(window_start(9, epoch, q, kTokens, kT));
      }
      ASSERT_EQ(joined, expected) << "step " << s;
    }
  }
}

TEST_F(TokenLoaderTest, WindowsReachTheWholeSplit) {
  Loader loader(*data_, {.global_batch = 124, .seed = 1, .epochs = 40});
  std::set<std::int64_t> starts;
  for (const auto& batch : drain(loader)) starts.insert(batch.begin(), batch.end());
  EXPECT_EQ(*starts.begin(), 0);
  EXPECT_EQ(*starts.rbegin(), kTokens - kT - 1);  // the last window ends on the last token
  EXPECT_GT(starts.size(), 900u);                 // 991 possible starts, 4960 draws
}

TEST_F(TokenLoaderTest, ResumeInsideAnEpochGivesTheSameBatches) {
  Loader full(*data_, {.global_batch = 10, .rank = 1, .world_size = 2, .seed = 4, .epochs = 2});
  const auto all = drain(full);
  Loader resumed(*data_, {.global_batch = 10, .rank = 1, .world_size = 2, .seed = 4,
                          .first_epoch = 0, .first_step_in_epoch = 5, .epochs = 2});
  const auto rest = drain(resumed);
  ASSERT_EQ(rest.size(), all.size() - 5);
  EXPECT_TRUE(std::equal(rest.begin(), rest.end(), all.begin() + 5));
}

TEST_F(TokenLoaderTest, EvaluationWindowsAreConsecutive) {
  Loader loader(*data_, {.global_batch = 10, .rank = 1, .world_size = 3, .shuffle = false,
                         .drop_last = false});
  std::int64_t step = 0;
  for (const auto& starts : drain(loader)) {
    const std::int64_t global = std::min<std::int64_t>(10, data_->size() - step * 10);
    const std::int64_t first = step * 10 + global / 3;
    ASSERT_EQ(static_cast<std::int64_t>(starts.size()), global * 2 / 3 - global / 3);
    for (std::size_t k = 0; k < starts.size(); ++k) {
      EXPECT_EQ(starts[k], (first + static_cast<std::int64_t>(k)) * kT);
    }
    ++step;
  }
  EXPECT_EQ(step, 13);
}

TEST_F(TokenLoaderTest, LimitedEvaluationServesTheFirstWindows) {
  const DatasetSplit limited =
      DatasetSplit::load((*dir_ / "text.h5").string(), "test", 4, kT);  // 4 of 12 windows
  Loader loader(limited, {.global_batch = 100, .shuffle = false, .drop_last = false});
  const auto batches = drain(loader);
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0], (std::vector<std::int64_t>{0, 8, 16, 24}));
}

TEST_F(TokenLoaderTest, FlipIsRefusedOnText) {
  try {
    Loader loader(*data_, {.global_batch = 10, .augment_flip = true});
    FAIL() << "no exception";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("augment_flip"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("text dataset"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace dpt::io
