// SPDX-License-Identifier: MIT
// The integrity ops: find_nonfinite finds the first NaN or Inf wherever it sits (block and thread
// boundaries), and hash_bits is the documented fold, independent of the thread count, and changed
// by any one flipped bit.
#include <gtest/gtest.h>
#include <omp.h>

#include <cstring>
#include <limits>
#include <vector>

#include "kernels/integrity_math.h"
#include "kernels/ops.h"
#include "testing/test_util.h"

namespace dpt::kernels {
namespace {

using test::random_tensor;

class Integrity : public ::testing::Test {
 protected:
  std::int64_t first(const Tensor& x) {
    Tensor index = Tensor::zeros({1}, DType::kI32);
    find_nonfinite(ctx_, x, index);
    return index.data<std::int32_t>()[0];
  }
  Context ctx_ = Context::create(Device::cpu());
};

void flip_bit(Tensor& t, std::int64_t i, int bit) {
  std::uint32_t bits = 0;
  std::memcpy(&bits, t.data<float>() + i, sizeof bits);
  bits ^= 1u << bit;
  std::memcpy(t.data<float>() + i, &bits, sizeof bits);
}

TEST_F(Integrity, FindNonfiniteFindsTheFirstAnywhere) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const float max = std::numeric_limits<float>::max();
  const int saved = omp_get_max_threads();
  for (const int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    for (const std::int64_t n : {std::int64_t{1}, std::int64_t{2049}, std::int64_t{1000003}}) {
      SCOPED_TRACE(::testing::Message() << "n=" << n << " threads=" << threads);
      Tensor x = random_tensor({n}, 5, -3.0f, 3.0f);
      x.data<float>()[n / 2] = max;  // the largest finite value is finite
      x.data<float>()[0] = -0.0f;
      EXPECT_EQ(first(x), n);
      for (const std::int64_t at : {n - 1, n / 3, std::int64_t{0}}) {
        for (const float bad : {nan, inf, -inf}) {
          Tensor y = x.clone();
          y.data<float>()[at] = bad;
          if (at + 1 < n) y.data<float>()[n - 1] = nan;  // a later one does not hide it
          EXPECT_EQ(first(y), at) << "value " << bad;
        }
      }
    }
  }
  omp_set_num_threads(saved);
  // A signalling NaN and a NaN with the sign bit set are non-finite too.
  Tensor odd = Tensor::zeros({3});
  const std::uint32_t snan = 0x7f800001u, negative_nan = 0xffc00000u;
  std::memcpy(odd.data<float>() + 2, &snan, sizeof snan);
  EXPECT_EQ(first(odd), 2);
  std::memcpy(odd.data<float>() + 1, &negative_nan, sizeof negative_nan);
  EXPECT_EQ(first(odd), 1);
  EXPECT_EQ(first(Tensor::zeros({0})), 0);
}

TEST_F(Integrity, FindNonfiniteChecksItsIndex) {
  const Tensor x = Tensor::zeros({4});
  Tensor wrong_dtype = Tensor::zeros({1});
  EXPECT_THROW(find_nonfinite(ctx_, x, wrong_dtype), Error);
  Tensor wrong_shape = Tensor::zeros({2}, DType::kI32);
  EXPECT_THROW(find_nonfinite(ctx_, x, wrong_shape), Error);
}

// The documented fold (Note [Parameter hash]), written out scalar.
std::uint64_t documented_hash(const float* x, std::int64_t n) {
  std::vector<std::uint64_t> chunks;
  for (std::int64_t begin = 0; begin < n; begin += kHashChunk) {
    const std::int64_t end = std::min(n, begin + kHashChunk);
    std::uint64_t lane[kHashLanes];
    for (int l = 0; l < kHashLanes; ++l) lane[l] = kHashMultiplier * static_cast<std::uint64_t>(l + 1);
    for (std::int64_t i = begin; i < end; ++i) {
      std::uint32_t bits = 0;
      std::memcpy(&bits, x + i, sizeof bits);
      auto& h = lane[(i - begin) % kHashLanes];
      h = (h ^ bits) * kHashMultiplier;
    }
    std::uint64_t h = static_cast<std::uint64_t>(end - begin);
    for (int l = 0; l < kHashLanes; ++l) h = (h ^ lane[l]) * kHashMultiplier;
    chunks.push_back(hash_finish(h));
  }
  std::uint64_t h = static_cast<std::uint64_t>(n);
  for (std::uint64_t c : chunks) h = (h ^ c) * kHashMultiplier;
  return hash_finish(h);
}

TEST_F(Integrity, HashIsTheDocumentedFoldForAnyThreadCount) {
  const int saved = omp_get_max_threads();
  for (const std::int64_t n : {std::int64_t{0}, std::int64_t{5}, std::int64_t{4096},
                               std::int64_t{4099}, std::int64_t{300007}}) {
    SCOPED_TRACE(::testing::Message() << "n=" << n);
    const Tensor x = random_tensor({n}, 13);
    omp_set_num_threads(1);
    const std::uint64_t one = hash_bits(ctx_, x);
    omp_set_num_threads(3);
    const std::uint64_t three = hash_bits(ctx_, x);
    EXPECT_EQ(one, three);
    EXPECT_EQ(one, documented_hash(x.data<float>(), n));
    EXPECT_EQ(hash_bits(ctx_, x.clone()), one);
  }
  omp_set_num_threads(saved);
}

TEST_F(Integrity, AnyFlippedBitChangesTheHash) {
  const std::int64_t n = 3 * kHashChunk + 5;
  const Tensor x = random_tensor({n}, 21);
  const std::uint64_t base = hash_bits(ctx_, x);
  for (const std::int64_t i : {std::int64_t{0}, std::int64_t{7}, kHashChunk, n - 1}) {
    for (int bit = 0; bit < 32; ++bit) {
      Tensor y = x.clone();
      flip_bit(y, i, bit);
      ASSERT_NE(hash_bits(ctx_, y), base) << "element " << i << " bit " << bit;
    }
  }
  // Element order matters: two swapped values, -0 against +0, and a shorter tensor all differ.
  Tensor swapped = x.clone();
  std::swap(swapped.data<float>()[1], swapped.data<float>()[2]);
  EXPECT_NE(hash_bits(ctx_, swapped), base);
  const Tensor zeros = Tensor::zeros({8});
  Tensor negative = zeros.clone();
  negative.data<float>()[3] = -0.0f;
  EXPECT_NE(hash_bits(ctx_, negative), hash_bits(ctx_, zeros));
  EXPECT_NE(hash_bits(ctx_, Tensor::view_of(x, 0, {n - 1})), base);
}

}  // namespace
}  // namespace dpt::kernels
