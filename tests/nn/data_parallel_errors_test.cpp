// SPDX-License-Identifier: MIT
// A collective that fails while DataParallel waits for it (an NCCL timeout or asynchronous error,
// an MPI error) surfaces as one dpt::Error that keeps the communicator's kind and words and adds
// which bucket and which step it was.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "comm/communicator.h"
#include "nn/models.h"
#include "nn/parallel/data_parallel.h"
#include "runtime/context.h"
#include "runtime/error.h"

namespace dpt::nn {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

class FailingWork final : public comm::Work {
 public:
  void wait() override {
    throw Error(ErrorKind::kComm, "NCCL all_reduce of 5130 floats (collective #3) did not complete "
                                  "within 1 s; the communicator was aborted");
  }
  bool test() override { return true; }
  double start_time() const override { return 0.0; }
  double end_time() const override { return 0.0; }
};

class CompletedWork final : public comm::Work {
 public:
  void wait() override {}
  bool test() override { return true; }
  double start_time() const override { return 0.0; }
  double end_time() const override { return 0.0; }
};

// A world of one whose all-reduce number `failing` (0-based) fails when waited for.
class FailingCommunicator final : public comm::Communicator {
 public:
  explicit FailingCommunicator(int failing) : failing_(failing) {}
  int rank() const override { return 0; }
  int world_size() const override { return 2; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 1; }
  int node_count() const override { return 2; }
  std::string backend() const override { return "failing"; }
  using Communicator::all_reduce;
  std::unique_ptr<comm::Work> all_reduce_async(float*, std::int64_t, comm::ReduceOp) override {
    if (calls_++ == failing_) return std::make_unique<FailingWork>();
    return std::make_unique<CompletedWork>();
  }
  void all_reduce(double*, std::int64_t, comm::ReduceOp) override {}
  void broadcast(void*, std::int64_t, int) override {}
  std::vector<std::string> all_gather(const std::string& local) override { return {local, local}; }
  void reduce_scatter(float*, std::int64_t, comm::ReduceOp) override {}
  void barrier() override {}
  double native_all_reduce_seconds(float*, std::int64_t) override { return 0.0; }

 private:
  int failing_;
  int calls_ = 0;
};

TEST(DataParallelErrors, AFailedAllReduceNamesItsBucketAndStep) {
  Sequential model = build_model(reference_model("mlp"), {1, 28, 28});
  FailingCommunicator comm(/*failing=*/1);
  DataParallel ddp(model, comm, {1.0, 1.0, /*overlap=*/false});
  ASSERT_GE(ddp.buckets().size(), 2u);
  const GradBucket& bucket = ddp.buckets()[1];
  ddp.prepare_backward(true, /*step=*/7);
  const Context ctx = Context::create(Device::cpu(), 1);
  StepInfo info;
  const Tensor logits = model.forward(ctx, Tensor::zeros({2, 1, 28, 28}), info);
  model.backward(ctx, Tensor::full(logits.shape(), 1.0f), info);  // reports every gradient
  try {
    ddp.finish();
    FAIL() << "finish() returned although bucket 1's all-reduce failed";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kComm);
    EXPECT_THAT(e.message(),
                AllOf(HasSubstr("bucket 1"), HasSubstr("step 7"),
                      HasSubstr(std::to_string(bucket.count) + " floats"),
                      HasSubstr("did not complete within 1 s")));
  }
}

}  // namespace
}  // namespace dpt::nn
