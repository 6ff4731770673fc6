// SPDX-License-Identifier: MIT
// The upload of a batch issues no wait on the compute stream; the wait comes where the batch is
// first used (UploadFence::wait_on_device), once, and covers images and labels; a batch dropped
// unused still orders its tensors' free after its copies. The device side is a fake that counts
// the compute-stream waits it is asked for, so this runs on the CPU; tests/cuda/cuda_model_test.cpp
// has the GPU uploader.
#include <gtest/gtest.h>

#include <memory>
#include <optional>

#include "nn/train/batch_on_device.h"
#include "runtime/batch_uploader.h"

namespace dpt::nn {
namespace {

struct Counts {
  int uploads = 0;
  int compute_waits = 0;
};

class CountingFence final : public UploadFence::Impl {
 public:
  explicit CountingFence(Counts& counts) : counts_(counts) {}
  void make_compute_wait() override { ++counts_.compute_waits; }

 private:
  Counts& counts_;
};

class FakeDeviceSide final : public BatchUploader::Impl {
 public:
  explicit FakeDeviceSide(Counts& counts) : counts_(counts) {}
  Upload upload(const Tensor& host) override {
    ++counts_.uploads;
    return Upload{host.clone(), UploadFence(std::make_shared<CountingFence>(counts_))};
  }

 private:
  Counts& counts_;
};

io::Batch host_batch() {
  io::Batch b;
  b.inputs = Tensor::full({2, 1, 4, 4}, 0.5f);
  b.labels = Tensor::zeros({2}, DType::kI32);
  return b;
}

TEST(BatchOnDevice, UploadIssuesNoWaitAndTheFirstUseWaitsOnceForImagesAndLabels) {
  Counts counts;
  BatchUploader uploader(std::make_unique<FakeDeviceSide>(counts));
  io::Batch current = on_device(uploader, host_batch());
  // The trainer uploads the next step's batch before queueing this step's kernels.
  io::Batch next = on_device(uploader, host_batch());
  EXPECT_EQ(counts.uploads, 4);
  EXPECT_EQ(counts.compute_waits, 0) << "an upload made the compute stream wait for its copy";
  EXPECT_TRUE(current.ready.pending());
  current.ready.wait_on_device();  // this step's first use
  EXPECT_EQ(counts.compute_waits, 2) << "images and labels";
  EXPECT_FALSE(current.ready.pending());
  current.ready.wait_on_device();
  EXPECT_EQ(counts.compute_waits, 2) << "a second use waits again";
  EXPECT_TRUE(next.ready.pending()) << "the next batch's copy is still not waited for";
  next.ready.wait_on_device();
  EXPECT_EQ(counts.compute_waits, 4);
}

TEST(BatchOnDevice, ABatchDroppedUnusedStillOrdersItsFreeAfterItsCopy) {
  Counts counts;
  BatchUploader uploader(std::make_unique<FakeDeviceSide>(counts));
  {
    std::optional<io::Batch> ahead = on_device(uploader, host_batch());
    EXPECT_EQ(counts.compute_waits, 0);
  }  // e.g. training stopped on a signal with the next batch already uploaded
  EXPECT_EQ(counts.compute_waits, 2);
  {
    io::Batch used = on_device(uploader, host_batch());
    used.ready.wait_on_device();
  }
  EXPECT_EQ(counts.compute_waits, 4) << "a waited fence waits no more when dropped";
}

TEST(BatchOnDevice, TheCpuUploaderHandsTheBatchBackWithNothingToWaitFor) {
  BatchUploader uploader(Device::cpu());
  const io::Batch host = host_batch();
  io::Batch batch = on_device(uploader, host);
  EXPECT_TRUE(batch.inputs.shares_storage_with(host.inputs));
  EXPECT_FALSE(batch.ready.pending());
  batch.ready.wait_on_device();  // harmless
}

}  // namespace
}  // namespace dpt::nn
