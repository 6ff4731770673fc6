// SPDX-License-Identifier: MIT
// Tensor: shapes, shared storage, views, copies and dtype checks.
#include <gtest/gtest.h>

#include <cmath>

#include "runtime/tensor.h"
#include "testing/test_util.h"

namespace dpt {
namespace {

TEST(Tensor, ShapeAndSize) {
  Tensor t = Tensor::zeros({2, 3, 5});
  EXPECT_EQ(t.numel(), 30);
  EXPECT_EQ(t.size_bytes(), 120u);
  EXPECT_EQ(t.rank(), 3);
  EXPECT_EQ(t.dim(2), 5);
  EXPECT_THROW(t.dim(3), Error);
  for (float v : t.to_vector()) EXPECT_EQ(v, 0.0f);
}

TEST(Tensor, DataIsAligned) {
  for (std::int64_t n : {1, 3, 17, 1000, 123457}) {
    Tensor t = Tensor::empty({n});
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t.raw_data()) % 64, 0u) << n;
  }
}

TEST(Tensor, CopiesShareStorageAndCloneDoesNot) {
  Tensor a = Tensor::full({4}, 1.0f);
  Tensor b = a;
  Tensor c = a.clone();
  a.data<float>()[2] = 7.0f;
  EXPECT_EQ(b.data<float>()[2], 7.0f);
  EXPECT_EQ(c.data<float>()[2], 1.0f);
  EXPECT_TRUE(a.shares_storage_with(b));
  EXPECT_FALSE(a.shares_storage_with(c));
}

TEST(Tensor, ViewOfWritesThroughToBase) {
  Tensor flat = Tensor::zeros({10});
  Tensor view = Tensor::view_of(flat, 4, {2, 3});
  view.fill(2.5f);
  const auto v = flat.to_vector();
  for (int i = 0; i < 10; ++i) EXPECT_EQ(v[i], (i >= 4) ? 2.5f : 0.0f) << i;
  EXPECT_THROW(Tensor::view_of(flat, 5, {2, 3}), Error);
  Tensor nested = Tensor::view_of(view, 2, {2});
  nested.fill(-1.0f);
  EXPECT_EQ(flat.data<float>()[6], -1.0f);
  EXPECT_EQ(flat.data<float>()[7], -1.0f);
  EXPECT_EQ(flat.data<float>()[8], 2.5f);
}

TEST(Tensor, RowsOfIsAViewOfSamples) {
  Tensor batch = Tensor::from_vector({4, 2, 3}, std::vector<float>(24, 0.0f));
  for (int i = 0; i < 24; ++i) batch.data<float>()[i] = static_cast<float>(i);
  Tensor middle = Tensor::rows_of(batch, 1, 2);
  EXPECT_EQ(middle.shape(), (Shape{2, 2, 3}));
  EXPECT_TRUE(middle.shares_storage_with(batch));
  EXPECT_EQ(middle.to_vector().front(), 6.0f);
  EXPECT_EQ(middle.to_vector().back(), 17.0f);
  EXPECT_THROW(Tensor::rows_of(batch, 3, 2), Error);  // past the last sample
}

TEST(Tensor, ReshapeKeepsElements) {
  Tensor a = Tensor::from_vector({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor b = a.reshape({3, 2});
  EXPECT_EQ(b.shape(), (Shape{3, 2}));
  EXPECT_EQ(b.data<float>()[5], 6.0f);
  EXPECT_THROW(a.reshape({4, 2}), Error);
}

TEST(Tensor, WrongDtypeAccessThrowsWithBothNames) {
  Tensor t = Tensor::zeros({3}, DType::kI32);
  try {
    (void)t.data<float>();
    FAIL() << "expected a dtype error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("i32"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("f32"), std::string::npos) << e.what();
  }
}

TEST(Tensor, CopyFromChecksSize) {
  Tensor a = Tensor::full({3}, 4.0f);
  Tensor b = Tensor::zeros({3});
  b.copy_from(a);
  EXPECT_EQ(b.to_vector(), (std::vector<float>{4, 4, 4}));
  Tensor c = Tensor::zeros({4});
  EXPECT_THROW(c.copy_from(a), Error);
}

TEST(BFloat16, RoundsToNearestEven) {
  EXPECT_EQ(to_float(to_bf16(1.0f)), 1.0f);
  EXPECT_EQ(to_float(to_bf16(-2.5f)), -2.5f);
  // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0).
  EXPECT_EQ(to_float(to_bf16(1.0f + 1.0f / 256)), 1.0f);
  EXPECT_EQ(to_float(to_bf16(1.0f + 3.0f / 256)), 1.0f + 4.0f / 256);
  EXPECT_TRUE(std::isnan(to_float(to_bf16(std::nanf("")))));
}

}  // namespace
}  // namespace dpt
