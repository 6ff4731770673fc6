// SPDX-License-Identifier: MIT
// NcclCommunicator: collectives on CUDA device memory with NCCL, on a stream of its own that is
// ordered against the device's compute stream by events; host memory goes to the wrapped host
// communicator (MPI or local), which also carries the ncclUniqueId from rank 0 to every rank.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"

namespace dpt::comm::nccl {

struct NcclOptions {
  // How long a wait for one NCCL operation (initialisation, a collective's launch or completion,
  // finalisation) may take before the communicator is aborted and a kComm error thrown instead of
  // hanging. A stalled or dead peer otherwise blocks every other rank forever.
  // make_communicator() takes the host communicator's collective_timeout() (`train
  // --collective-timeout`); infinity waits forever.
  double timeout_s = 600.0;
};

// Note [NCCL stream ordering]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Every kernel of a device runs on dpt::cuda::compute_stream(device). A collective on device
// memory:
//   1. records an event on the compute stream and makes the NCCL stream (high priority,
//      non-blocking) wait on it, so NCCL reads the buffer only after the kernels queued before the
//      call (e.g. the backward kernels that wrote a gradient bucket) have finished;
//   2. enqueues the NCCL call on the NCCL stream and records a "done" event after it;
//   3. Work::wait() polls the done event and ncclCommGetAsyncError until completion, an error or
//      the timeout, then makes the compute stream wait on the done event, so kernels queued after
//      wait() (the optimizer reading the gradients, a stream-ordered free) run after the reduction.
// Compute continues on the compute stream while the NCCL stream reduces: that is the overlap.
//
// Note [NCCL errors and hangs]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The NCCL communicator is non-blocking (ncclConfig_t::blocking = 0): no NCCL call blocks the
// host, calls may return ncclInProgress and are then polled, with the timeout, through
// ncclCommGetAsyncError. So initialisation (which waits for every rank), a collective's launch
// (which may connect to peers) and a collective's completion all end, at the latest after
// NcclOptions::timeout_s, in ncclCommAbort and a kComm dpt::Error naming the operation; an
// asynchronous NCCL error (a peer died, a network error) aborts and throws as soon as it is seen.
// DataParallel adds the bucket and the step; main then ends the job with comm::abort_all().
// After an abort every further collective on device memory throws at once.
//
// Threads: one host thread drives a device (docs/DESIGN.md); the NCCL communicator is
// nevertheless only touched under a mutex, so a Work may be waited for on another thread.
class NcclCommunicator final : public Communicator {
 public:
  // Collective over the ranks of `host`: rank r of host is NCCL rank r, on `cuda_device`.
  NcclCommunicator(std::unique_ptr<Communicator> host, int cuda_device, NcclOptions options = {});
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;
  // Frees the NCCL communicator once the last Work handed out is gone (finalize, destroy; abort
  // when that fails or times out); never throws. Destroyed while an exception unwinds the stack
  // (this rank is failing), it aborts instead: finalizing would wait for peers.
  ~NcclCommunicator() override;

  int rank() const override { return host_->rank(); }
  int world_size() const override { return host_->world_size(); }
  int local_rank() const override { return host_->local_rank(); }
  int local_size() const override { return host_->local_size(); }
  int node_count() const override { return host_->node_count(); }
  std::string backend() const override { return "nccl"; }
  int device() const { return device_; }
  const NcclOptions& options() const { return options_; }
  // The communicator for host memory (MPI or local).
  Communicator& host() { return *host_; }

  // Each collective below runs on NCCL when its buffer is device memory
  // (dpt::cuda::is_device_pointer) and on the host communicator otherwise; all ranks must pass
  // the same kind of memory. Collectives on device memory are ordered after the kernels queued
  // on the compute stream before the call, and the kernels queued after completion (wait() for
  // the async one, return for the others) are ordered after them: Note [NCCL stream ordering].
  using Communicator::all_reduce;
  std::unique_ptr<Work> all_reduce_async(float* data, std::int64_t count, ReduceOp op) override;
  std::unique_ptr<Work> all_reduce_bf16_async(BFloat16* data, std::int64_t count) override;
  void all_reduce(double* data, std::int64_t count, ReduceOp op) override;
  void all_reduce(std::int64_t* data, std::int64_t count, ReduceOp op) override;
  // Host shards: the host communicator's. Device shards (the output and every shard in device
  // memory): Note [Exact sum on the GPU] in nccl/exact_sum_kernels.cu.
  std::unique_ptr<Work> exact_sum_async(ExactSumBucket bucket) override;
  void broadcast(void* data, std::int64_t count_bytes, int root) override;
  // Host strings: always the host communicator.
  std::vector<std::string> all_gather(const std::string& local) override;
  void reduce_scatter(float* data, std::int64_t block_count, ReduceOp op) override;
  // Uneven blocks (a sharded optimizer), on device memory one NCCL group of per-root calls:
  // ncclReduce onto each block's rank (reduce-scatter), ncclBroadcast from it (all-gather),
  // ncclSend/ncclRecv (gather, scatter; the root's own block copied on the stream). NCCL has no
  // v-variants; each call moves its block once, so the bytes are those of the collective.
  std::unique_ptr<Work> reduce_scatter_async(float* data, std::vector<std::int64_t> counts,
                                             ReduceOp op) override;
  std::unique_ptr<Work> all_gather_async(float* data, std::vector<std::int64_t> counts) override;
  void gather(const float* local, float* all, const std::vector<std::int64_t>& counts,
              int root) override;
  void scatter(const float* all, float* local, const std::vector<std::int64_t>& counts,
               int root) override;
  // gather (to_root) or scatter: every other rank's block between it and the root.
  void exchange_with_root(const char* op, float* all, float* local,
                          const std::vector<std::int64_t>& counts, int root, bool to_root);
  // The host communicator's barrier (NCCL has none; device work is not waited for).
  void barrier() override;
  // Device memory: one ncclAllReduce (sum) timed on the host from launch to observed completion,
  // after the compute stream has drained (not timed). Host memory: the host communicator's.
  double native_all_reduce_seconds(float* data, std::int64_t count) override;
  // ncclCommAbort now: pending Works then fail at once (wait) or are dropped (destructor).
  void abort() noexcept override;
  // Labels, --check-collectives and the flight record concern the host communicator's
  // collectives (the step check and agreement, start-up, checkpoints); NCCL's own are bounded by
  // NcclOptions::timeout_s.
  void set_label(CollectiveLabel label) override {
    host_->set_label(label);
    label_ = std::move(label);
  }
  void set_check_collectives(bool on) override { host_->set_check_collectives(on); }
  std::string flight_record(std::size_t count) const override {
    return host_->flight_record(count);
  }

  // Shared by the communicator and its Works (so a Work outliving nothing dangles).
  struct State;

 protected:
  void apply_collective_timeout(double seconds) override { host_->set_collective_timeout(seconds); }

 private:
  std::unique_ptr<Communicator> host_;
  int device_;
  NcclOptions options_;
  std::shared_ptr<State> state_;
  int uncaught_at_construction_ = 0;  // std::uncaught_exceptions() then: see the destructor
};

}  // namespace dpt::comm::nccl
