// SPDX-License-Identifier: MIT
// BatchUploader: moves each host batch from the loader to the training device. On the CPU it hands
// the tensor back unchanged. On a GPU it copies through pinned staging buffers on a copy stream of
// its own and hands back, with the tensor, an UploadFence: the compute stream waits for that copy
// only when the fence is waited on, where the batch is first used. So the copy of batch k+1, queued
// before step k's kernels, runs while the GPU still computes batch k (Note [Upload one step ahead]
// in src/nn/train/trainer.cpp).
#pragma once

#include <memory>
#include <vector>

#include "runtime/device.h"
#include "runtime/tensor.h"

namespace dpt {

// Whether kernels on the compute stream are ordered after the copies of an upload. Copies of a
// fence share its state. Until wait_on_device() a kernel may read the tensor before its copy has
// finished; after it, every kernel queued later on the compute stream runs after the copy.
class UploadFence {
 public:
  // The device side of one copy (runtime/cuda/batch_uploader_cuda.cpp, or a test's fake).
  class Impl {
   public:
    virtual ~Impl() = default;
    // Makes the compute stream wait for the copy (a stream wait: the host does not block).
    virtual void make_compute_wait() = 0;
  };

  UploadFence() = default;  // nothing to wait for (the CPU, an empty tensor)
  explicit UploadFence(std::shared_ptr<Impl> impl);

  // Orders the compute stream after every copy of this fence, once: later calls do nothing.
  void wait_on_device();
  // True while there are copies the compute stream has not been made to wait for.
  bool pending() const;
  // This fence then also covers `other`'s copies (a batch's images and labels); the two share them.
  void add(const UploadFence& other);

 private:
  struct Copy {
    explicit Copy(std::shared_ptr<Impl> i) : impl(std::move(i)) {}
    Copy(const Copy&) = delete;
    Copy& operator=(const Copy&) = delete;
    // A device tensor is freed on the compute stream: a batch dropped unused must still order
    // that free after its copy, so the copy's last owner issues the wait (never throwing).
    ~Copy();
    std::shared_ptr<Impl> impl;
    bool waited = false;
  };
  std::vector<std::shared_ptr<Copy>> copies_;
};

// An uploaded tensor and what orders the compute stream after its copy.
struct Upload {
  Tensor tensor;
  UploadFence ready;
};

class BatchUploader {
 public:
  // The device-specific part (runtime/cuda/batch_uploader_cuda.cpp).
  class Impl {
   public:
    virtual ~Impl() = default;
    virtual Upload upload(const Tensor& host) = 0;
  };

  explicit BatchUploader(Device device);
  // With a given device side (tests: a fake that counts the waits).
  explicit BatchUploader(std::unique_ptr<Impl> impl);
  BatchUploader(const BatchUploader&) = delete;
  BatchUploader& operator=(const BatchUploader&) = delete;
  ~BatchUploader();

  // A tensor on the device with host's contents; host may be reused when this returns. Issues no
  // wait on the compute stream: call ready.wait_on_device() before the first kernel that reads it.
  Upload upload(const Tensor& host);

 private:
  std::unique_ptr<Impl> impl_;  // null on the CPU
};

}  // namespace dpt
