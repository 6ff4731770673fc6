// SPDX-License-Identifier: MIT
// A collective that fails while DataParallel waits for it (an NCCL timeout or asynchronous error,
// an MPI error) surfaces as one dpt::Error that keeps the communicator's kind and words and adds
// which bucket and which step it was. Destroyed by an error's unwinding with collectives pending,
// DataParallel aborts the communicator before those collectives' destructors could wait for peers
// (Note [Abort on unwind]). With collectives that complete on the device, finish() only orders
// the device after them and complete() does the host waiting (Note [Device-side finish]).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
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

// Rank 0 of a pretend world of two whose collectives other than the gradient all-reduce do
// nothing: the fakes below say only how the all-reduces end.
class TwoRankFake : public comm::Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 2; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 1; }
  int node_count() const override { return 2; }
  void all_reduce(double*, std::int64_t, comm::ReduceOp) override {}
  void all_reduce(std::int64_t*, std::int64_t, comm::ReduceOp) override {}
  std::unique_ptr<comm::Work> exact_sum_async(comm::ExactSumBucket) override {
    return std::make_unique<CompletedWork>();
  }
  void broadcast(void*, std::int64_t, int) override {}
  std::vector<std::string> all_gather(const std::string& local) override { return {local, local}; }
  void reduce_scatter(float*, std::int64_t, comm::ReduceOp) override {}
  void barrier() override {}
  double native_all_reduce_seconds(float*, std::int64_t) override { return 0.0; }
  using Communicator::all_reduce;
};

// All-reduce number `failing` (0-based) fails when waited for.
class FailingCommunicator final : public TwoRankFake {
 public:
  explicit FailingCommunicator(int failing) : failing_(failing) {}
  std::string backend() const override { return "failing"; }
  std::unique_ptr<comm::Work> all_reduce_async(float*, std::int64_t, comm::ReduceOp) override {
    if (calls_++ == failing_) return std::make_unique<FailingWork>();
    return std::make_unique<CompletedWork>();
  }

 private:
  int failing_;
  int calls_ = 0;
};

// Records what happened to the collectives of a fake communicator, in order.
struct Journal {
  bool aborted = false;
  int ordered_on_device = 0;
  int waited = 0;
  int destroyed = 0;
  int destroyed_after_abort = 0;
};

// A collective that is still pending: its destructor notes whether the communicator had been
// aborted by then (a real one would wait for peers otherwise). `device_side` makes it complete on
// the device (Work::order_on_device returns true); `fail_wait` makes wait() fail.
class PendingWork final : public comm::Work {
 public:
  PendingWork(Journal& journal, bool device_side, bool fail_wait)
      : journal_(journal), device_side_(device_side), fail_wait_(fail_wait) {}
  ~PendingWork() override {
    ++journal_.destroyed;
    if (journal_.aborted) ++journal_.destroyed_after_abort;
  }
  void wait() override {
    ++journal_.waited;
    if (fail_wait_) throw Error(ErrorKind::kComm, "NCCL all_reduce timed out");
  }
  bool order_on_device() override {
    if (device_side_) ++journal_.ordered_on_device;
    return device_side_;
  }
  bool test() override { return false; }
  double start_time() const override { return 1.0; }
  double end_time() const override { return 2.0; }
  double duration_ms() const override { return 0.25; }

 private:
  Journal& journal_;
  bool device_side_;
  bool fail_wait_;
};

class JournalCommunicator final : public TwoRankFake {
 public:
  JournalCommunicator(Journal& journal, bool device_side, int failing = -1)
      : journal_(journal), device_side_(device_side), failing_(failing) {}
  std::string backend() const override { return "journal"; }
  std::unique_ptr<comm::Work> all_reduce_async(float*, std::int64_t, comm::ReduceOp) override {
    return std::make_unique<PendingWork>(journal_, device_side_, calls_++ == failing_);
  }
  void abort() noexcept override { journal_.aborted = true; }

 private:
  Journal& journal_;
  bool device_side_;
  int failing_;
  int calls_ = 0;
};

// Forward and backward of a 2-sample batch through `model`: every gradient is reported, so with
// overlap every bucket's all-reduce is launched (and left pending by the fake communicator).
void backward_step(Sequential& model) {
  const Context ctx = Context::create(Device::cpu(), 1);
  StepInfo info;
  const Tensor logits = model.forward(ctx, Tensor::zeros({2, 1, 28, 28}), info);
  model.backward(ctx, Tensor::full(logits.shape(), 1.0f), info);
}

TEST(DataParallelErrors, AnErrorUnwindingPastPendingAllReducesAbortsTheCommunicatorFirst) {
  Sequential model = build_model(reference_model("mlp"), {1, 28, 28});
  Journal journal;
  JournalCommunicator comm(journal, /*device_side=*/false);
  std::size_t buckets = 0;
  try {
    DataParallel ddp(model, comm, {1.0, 1.0, /*overlap=*/true});
    buckets = ddp.buckets().size();
    ddp.prepare_backward(true, 3);
    backward_step(model);  // launches every bucket; none is waited for
    throw std::runtime_error("a kernel failed");  // e.g. the loss of this step
  } catch (const std::runtime_error&) {
  }
  ASSERT_GE(buckets, 2u);
  EXPECT_TRUE(journal.aborted) << "the communicator was not aborted";
  EXPECT_EQ(journal.destroyed, static_cast<int>(buckets));
  EXPECT_EQ(journal.destroyed_after_abort, static_cast<int>(buckets))
      << "pending all-reduces were destroyed (and would have waited for peers) before the abort";
}

TEST(DataParallelErrors, NormalDestructionDoesNotAbort) {
  Sequential model = build_model(reference_model("mlp"), {1, 28, 28});
  Journal journal;
  JournalCommunicator comm(journal, /*device_side=*/false);
  {
    DataParallel ddp(model, comm, {1.0, 1.0, /*overlap=*/true});
    ddp.prepare_backward(true, 3);
    backward_step(model);
  }  // pending collectives, no error: they are waited for, the communicator stays usable
  EXPECT_FALSE(journal.aborted);
  EXPECT_GE(journal.destroyed, 2);
}

TEST(DataParallelErrors, AnErrorCaughtInsideAScopeDoesNotAbortADataParallelOutsideIt) {
  Sequential model = build_model(reference_model("mlp"), {1, 28, 28});
  Journal journal;
  JournalCommunicator comm(journal, /*device_side=*/false);
  {
    DataParallel ddp(model, comm, {1.0, 1.0, /*overlap=*/true});
    ddp.prepare_backward(true, 3);
    backward_step(model);
    try {
      throw std::runtime_error("handled");
    } catch (const std::runtime_error&) {
    }
  }
  EXPECT_FALSE(journal.aborted);
}

TEST(DataParallelDeviceFinish, FinishOrdersTheDeviceAndCompleteWaitsOnTheHost) {
  Sequential model = build_model(reference_model("mlp"), {1, 28, 28});
  Journal journal;
  JournalCommunicator comm(journal, /*device_side=*/true);
  DataParallel ddp(model, comm, {1.0, 1.0, /*overlap=*/true});
  const int buckets = static_cast<int>(ddp.buckets().size());
  ASSERT_GE(buckets, 2);
  for (int step = 0; step < 2; ++step) {
    SCOPED_TRACE(step);
    ddp.prepare_backward(true, step);
    backward_step(model);
    ddp.finish();
    EXPECT_EQ(journal.ordered_on_device, (step + 1) * buckets);
    EXPECT_EQ(journal.waited, step * buckets) << "finish() waited on the host";
    ddp.complete();
    EXPECT_EQ(journal.waited, (step + 1) * buckets) << "complete() checks every bucket";
    ASSERT_EQ(ddp.records().size(), static_cast<std::size_t>(buckets));
    EXPECT_EQ(ddp.records()[0].duration_ms, 0.25) << "the collective's own duration";
  }
  // A step that forgets complete() is refused rather than leaving collectives unchecked.
  ddp.prepare_backward(true, 2);
  backward_step(model);
  ddp.finish();
  EXPECT_THROW(ddp.prepare_backward(true, 3), Error);
  ddp.complete();
  EXPECT_FALSE(journal.aborted);
}

TEST(DataParallelDeviceFinish, HostCollectivesAreWaitedForInFinish) {
  Sequential model = build_model(reference_model("mlp"), {1, 28, 28});
  Journal journal;
  JournalCommunicator comm(journal, /*device_side=*/false);
  DataParallel ddp(model, comm, {1.0, 1.0, /*overlap=*/true});
  ddp.prepare_backward(true, 0);
  backward_step(model);
  ddp.finish();
  EXPECT_EQ(journal.waited, static_cast<int>(ddp.buckets().size()));
  EXPECT_EQ(journal.ordered_on_device, 0);
  ddp.complete();  // nothing left
  EXPECT_EQ(journal.waited, static_cast<int>(ddp.buckets().size()));
}

TEST(DataParallelDeviceFinish, AFailureSeenInCompleteNamesItsBucketAndStep) {
  Sequential model = build_model(reference_model("mlp"), {1, 28, 28});
  Journal journal;
  JournalCommunicator comm(journal, /*device_side=*/true, /*failing=*/1);
  DataParallel ddp(model, comm, {1.0, 1.0, /*overlap=*/true});
  ddp.prepare_backward(true, 9);
  backward_step(model);
  ddp.finish();  // the failure is not visible yet: the device was only ordered after it
  try {
    ddp.complete();
    FAIL() << "complete() returned although bucket 1's all-reduce failed";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kComm);
    EXPECT_THAT(e.message(), AllOf(HasSubstr("bucket 1"), HasSubstr("step 9"),
                                   HasSubstr("timed out")));
  }
}

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
