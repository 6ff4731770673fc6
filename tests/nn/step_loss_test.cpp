// SPDX-License-Identifier: MIT
// StepLoss (Note [One loss read per step]): the loss read once at the end of a step is bitwise the
// sum the trainer formed before from one softmax_cross_entropy per micro-batch (so CPU training is
// unchanged), micro-batches must follow each other, and an out-of-range label is an error.
#include <gtest/gtest.h>

#include <cstdint>

#include "kernels/ops.h"
#include "nn/train/step_loss.h"
#include "runtime/context.h"
#include "runtime/error.h"
#include "testing/test_util.h"

namespace dpt::nn {
namespace {

Tensor labels_for(std::int64_t n, std::int64_t classes) {
  Tensor labels = Tensor::empty({n}, DType::kI32);
  for (std::int64_t i = 0; i < n; ++i) {
    labels.data<std::int32_t>()[i] = static_cast<std::int32_t>((i * 7 + 3) % classes);
  }
  return labels;
}

Tensor rows_of(const Tensor& t, std::int64_t first, std::int64_t count) {
  Shape shape = t.shape();
  const std::int64_t row = t.numel() / shape[0];
  shape[0] = count;
  return Tensor::view_of(t, first * row, shape);
}

TEST(StepLoss, OneReadEqualsThePerMicroBatchSumsBitwise) {
  const Context ctx = Context::create(Device::cpu(), 2);
  constexpr std::int64_t kRows = 203, kClasses = 10;
  const Tensor logits = test::random_tensor({kRows, kClasses}, 11, -4.0f, 4.0f);
  const Tensor labels = labels_for(kRows, kClasses);
  StepLoss step_loss(Device::cpu());
  for (std::int64_t micro : {kRows, std::int64_t{64}, std::int64_t{7}, std::int64_t{1}}) {
    SCOPED_TRACE(micro);
    double before = 0.0;  // the trainer's former sum: one loss_sum per micro-batch, in order
    step_loss.begin_step(kRows);
    for (std::int64_t start = 0; start < kRows; start += micro) {
      const std::int64_t count = std::min(micro, kRows - start);
      Tensor d1 = Tensor::empty({count, kClasses}), d2 = Tensor::empty({count, kClasses});
      before += kernels::softmax_cross_entropy(ctx, rows_of(logits, start, count),
                                               rows_of(labels, start, count), &d1)
                    .loss_sum;
      kernels::softmax_cross_entropy_rows(ctx, rows_of(logits, start, count),
                                          rows_of(labels, start, count), &d2,
                                          step_loss.micro_batch(start, count));
      EXPECT_TRUE(test::all_close(d2, d1, 0.0, 0.0)) << "the same gradient";
    }
    EXPECT_EQ(step_loss.micro_batches(), static_cast<std::size_t>((kRows + micro - 1) / micro));
    const double after = step_loss.read(labels, kClasses).sum;
    EXPECT_EQ(after, before) << "bitwise";
    EXPECT_GT(after, 0.0);
  }
}

TEST(StepLoss, MicroBatchesMustFollowEachOther) {
  StepLoss step_loss(Device::cpu());
  step_loss.begin_step(10);
  step_loss.micro_batch(0, 4);
  EXPECT_THROW(step_loss.micro_batch(5, 2), Error) << "a gap";
  EXPECT_THROW(step_loss.micro_batch(4, 7), Error) << "past the step's rows";
  step_loss.micro_batch(4, 6);
}

TEST(StepLoss, ABadLabelIsAnErrorNamingIt) {
  const Context ctx = Context::create(Device::cpu(), 1);
  const Tensor logits = test::random_tensor({3, 4}, 5);
  Tensor labels = labels_for(3, 4);
  labels.data<std::int32_t>()[1] = 9;
  StepLoss step_loss(Device::cpu());
  step_loss.begin_step(3);
  try {
    kernels::softmax_cross_entropy_rows(ctx, logits, labels, nullptr, step_loss.micro_batch(0, 3));
    FAIL() << "no error for label 9 of 4 classes";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("label 9 of sample 1 is outside [0, 4)"), std::string::npos)
        << e.message();
  }
}

}  // namespace
}  // namespace dpt::nn
