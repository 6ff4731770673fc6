// SPDX-License-Identifier: MIT
// Communicator: the collectives data-parallel training needs, on host (CPU) memory.
// Implementations: LocalCommunicator (a world of one; every collective is exact and immediate) and
// MpiCommunicator (MPI on a communication thread of its own, so compute continues while a bucket is
// reduced). Only make_communicator() names the implementations.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "runtime/dtype.h"

namespace dpt::comm {

enum class ReduceOp { kSum, kMax, kMin };

enum class CollectiveKind {
  kAllReduce,
  kExactSum,
  kBroadcast,
  kAllGather,
  kReduceScatter,
  kGather,
  kScatter,
  kBarrier
};
const char* to_string(CollectiveKind kind);

// What the collectives a thread issues are for, in deadline messages, --check-collectives and
// the flight record (comm/flight_recorder.h): "gradient bucket" 3 at step 40.
struct CollectiveLabel {
  std::string what;
  std::int64_t bucket = -1;  // -1: none
  std::int64_t step = -1;    // -1: none
  bool operator==(const CollectiveLabel&) const = default;
};

// One bucket of an exact gradient sum (Note [Exact gradient sum] in runtime/exact_sum.cpp): the
// sum over every rank's shards, the same bits whatever the number of ranks and however the shards
// are spread over them. Pointers are in the communicator's memory (host; device for NCCL).
struct ExactSumBucket {
  std::vector<const float*> shards;  // this rank's shard gradients, `count` values each
  float* out = nullptr;              // the sum, `count` values; may be one of `shards`
  std::int64_t count = 0;
  std::vector<std::int64_t> chunk_starts;  // the chunks sharing an exponent: ascending, from 0
  std::int64_t total_shards = 1;           // shards of all ranks together (the same on every rank)
  // Empty: every rank receives the whole sum. Else (a sharded optimizer) world_size() counts in
  // rank order, summing to `count`: rank r receives only its block, at its place in `out`, and
  // the rest of `out` is left as it was.
  std::vector<std::int64_t> owned_counts;
};

// A collective in flight. wait() blocks until it completed on this rank (its buffer may then be
// read and written), rethrowing the error it failed with; test() says whether wait() would return
// at once. Destroying a Work that was not waited for waits for it (the buffer must stay alive).
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
  virtual bool test() = 0;
  // (optional) Orders the work the caller queues on the device's compute stream from now on after
  // this collective, without blocking the host (a stream wait on the collective's completion
  // event), and returns true; wait() must still be called later, and is what reports a failure or
  // a timeout. Returns false where the collective has no device-side completion (host
  // collectives): the caller then waits with wait() before using the buffer.
  virtual bool order_on_device() { return false; }
  // (optional) Milliseconds the collective took where it ran, once it has completed: the time
  // between its start and completion events on a GPU, end_time() - start_time() otherwise.
  virtual double duration_ms() const { return (end_time() - start_time()) * 1e3; }
  // Steady-clock seconds (since an arbitrary epoch, the same for every Work of a process) when the
  // collective started and finished executing; 0 until then. Used for overlap records.
  virtual double start_time() const = 0;
  virtual double end_time() const = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // Ranks on this node and this rank's index among them (MPI_Comm_split_type shared memory).
  virtual int local_rank() const = 0;
  virtual int local_size() const = 0;
  // Number of distinct nodes.
  virtual int node_count() const = 0;
  // "local", "mpi" or "nccl".
  virtual std::string backend() const = 0;

  // Every rank must issue collectives in the same order with the same counts (elements, not
  // bytes); see Note [Gradient bucket order] in src/nn/parallel/data_parallel.h.
  // In-place all-reduce of `count` floats at `data`, asynchronous.
  virtual std::unique_ptr<Work> all_reduce_async(float* data, std::int64_t count, ReduceOp op) = 0;
  // Blocking variants.
  void all_reduce(float* data, std::int64_t count, ReduceOp op) {
    all_reduce_async(data, count, op)->wait();
  }
  virtual void all_reduce(double* data, std::int64_t count, ReduceOp op) = 0;
  virtual void all_reduce(std::int64_t* data, std::int64_t count, ReduceOp op) = 0;
  // The exact sum of one bucket, asynchronous like all_reduce_async (the shards and `out` must
  // stay alive and unwritten until the Work completes). Every rank passes the same count, chunks
  // and total_shards, in the same order as its other collectives.
  virtual std::unique_ptr<Work> exact_sum_async(ExactSumBucket bucket) = 0;
  // In-place sum of `count` bfloat16 values at `data`, asynchronous (--grad-reduce bf16: half the
  // bytes of a float all-reduce). Every partial sum is rounded to bf16, as NCCL's bf16 all-reduce
  // does, so the result depends on the reduction's order (fixed for a given world size). The
  // default throws: a backend without it cannot reduce in bf16.
  virtual std::unique_ptr<Work> all_reduce_bf16_async(BFloat16* data, std::int64_t count);
  // `count` bytes at `data` from `root` to every rank.
  virtual void broadcast(void* data, std::int64_t count_bytes, int root) = 0;
  // Every rank's `local` bytes (any length per rank), in rank order.
  virtual std::vector<std::string> all_gather(const std::string& local) = 0;
  // reduce_scatter: `data` holds world_size() equal blocks of block_count floats; on return this
  // rank's block (index rank()) holds the reduction of everyone's block. Other blocks undefined.
  virtual void reduce_scatter(float* data, std::int64_t block_count, ReduceOp op) = 0;
  virtual void barrier() = 0;

  // Collectives over uneven blocks, for a sharded optimizer (Note [Sharded optimizer] in
  // nn/parallel/data_parallel.h). `counts` has world_size() entries, the same on every rank:
  // block r is counts[r] consecutive floats, the blocks follow one another in rank order. The
  // defaults throw: a backend without them cannot shard (the MPI and local ones have them).
  // In place and asynchronous: `data` holds sum(counts) floats; on completion this rank's block
  // holds the reduction of every rank's copy of that block; the other blocks are undefined.
  virtual std::unique_ptr<Work> reduce_scatter_async(float* data, std::vector<std::int64_t> counts,
                                                     ReduceOp op);
  // In place and asynchronous: rank r's block of `data` is its contribution; on completion every
  // rank holds every block.
  virtual std::unique_ptr<Work> all_gather_async(float* data, std::vector<std::int64_t> counts);
  // Blocking. gather: `local` (counts[rank()] floats) of every rank lands in `all` of `root`
  // (sum(counts) floats; ignored elsewhere). scatter: the reverse.
  virtual void gather(const float* local, float* all, const std::vector<std::int64_t>& counts,
                      int root);
  virtual void scatter(const float* all, float* local, const std::vector<std::int64_t>& counts,
                       int root);
  // (optional) For a rank that is failing with an error in flight: ends this rank's part of the
  // communicator at once (ncclCommAbort for NCCL), so that the collectives still pending fail fast
  // and destroying them, and the communicator, no longer waits for peers that will never come
  // (each up to the NCCL timeout). Every later collective fails. Never throws. The default does
  // nothing: host collectives (MPI) end with the job, in abort_all(). See Note [Abort on unwind]
  // in src/nn/parallel/data_parallel.cpp.
  virtual void abort() noexcept {}
  // Names the collectives issued from now on (see CollectiveLabel); LabelScope sets and restores.
  virtual void set_label(CollectiveLabel label) { label_ = std::move(label); }
  const CollectiveLabel& label() const { return label_; }
  // The deadline of every collective (seconds from when it starts executing; 0: none; 300 until
  // set). MPI: on expiry every rank that can still speak reports the collective, how long it
  // waited and which ranks did not arrive, and the job ends (Note [Collective deadline] in
  // comm/mpi/watchdog.h). NCCL takes its host communicator's value when it is created.
  void set_collective_timeout(double seconds) {
    collective_timeout_s_ = seconds;
    apply_collective_timeout(seconds);
  }
  double collective_timeout() const { return collective_timeout_s_; }
  // Debug: every collective first compares its kind, size and label across ranks and fails
  // naming both sides when they differ, instead of a hang or a silent mismatch.
  virtual void set_check_collectives(bool /*on*/) {}
  // The last `count` collectives of this rank, one line each ("" where none are recorded).
  virtual std::string flight_record(std::size_t /*count*/) const { return {}; }
  // Benchmark baseline (dpt-bench allreduce): one in-place sum with the backend's own call
  // (MPI_Allreduce), run in order with the other collectives, returning the seconds that call
  // alone took, without the queueing and hand-over that all_reduce_async adds.
  virtual double native_all_reduce_seconds(float* data, std::int64_t count) = 0;

 protected:
  virtual void apply_collective_timeout(double /*seconds*/) {}
  CollectiveLabel label_;

 private:
  double collective_timeout_s_ = 300.0;
};

// Where each block of an uneven collective starts (counts.size() + 1 entries, the last the
// total), after checking `counts` (one per rank of a world of world_size, none negative); errors
// name `op`. Shared by every backend, so they refuse the same calls with the same words.
std::vector<std::int64_t> uneven_block_starts(const char* op, const std::vector<std::int64_t>& counts,
                                              int world_size);

// Labels the collectives issued while it lives, then restores the previous label.
class LabelScope {
 public:
  LabelScope(Communicator& comm, CollectiveLabel label) : comm_(comm), previous_(comm.label()) {
    comm_.set_label(std::move(label));
  }
  LabelScope(const LabelScope&) = delete;
  LabelScope& operator=(const LabelScope&) = delete;
  ~LabelScope() { comm_.set_label(std::move(previous_)); }

 private:
  Communicator& comm_;
  CollectiveLabel previous_;
};

// The process's MPI lifetime: initialises MPI (MPI_Init_thread, MPI_THREAD_SERIALIZED or better,
// errors returned instead of fatal: MPI_ERRORS_RETURN) when the process was started by an MPI
// launcher (OMPI_COMM_WORLD_SIZE, PMI_SIZE, PMIX_RANK... in the environment) or when forced, and
// finalises it when destroyed. Create one in main before any Communicator and destroy it last.
class Environment {
 public:
  enum class Mode { kAuto, kForceMpi, kNoMpi };
  Environment(int* argc, char*** argv, Mode mode = Mode::kAuto);
  Environment(const Environment&) = delete;
  Environment& operator=(const Environment&) = delete;
  ~Environment();
  bool mpi_active() const { return mpi_active_; }

 private:
  bool mpi_active_ = false;
};

// "auto": MPI when an Environment has initialised MPI, else the local world of one. "local" and
// "mpi" force one ("mpi" without an initialised MPI is an error). Sets dpt::set_process_rank().
std::unique_ptr<Communicator> make_communicator(const std::string& kind = "auto");

// The communicator for training on cuda_device: NCCL over the host communicator's ranks when this
// binary has CUDA; throws otherwise. Takes `host` (from make_communicator), which keeps serving
// collectives on host memory and carries NCCL's unique id; rank r of host uses NCCL rank r.
// Collective: every rank calls it. NCCL's timeout is host->collective_timeout() (none when 0).
std::unique_ptr<Communicator> make_device_communicator(std::unique_ptr<Communicator> host,
                                                       int cuda_device);

// Ends every rank of the job with `code`: MPI_Abort when MPI runs, std::_Exit otherwise. Used by
// main after logging a fatal error, so that no other rank waits forever in a collective.
[[noreturn]] void abort_all(int code);

}  // namespace dpt::comm
