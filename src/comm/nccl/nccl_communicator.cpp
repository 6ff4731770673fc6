// SPDX-License-Identifier: MIT
// NcclCommunicator: initialisation over the host communicator, launches ordered against the
// compute stream, Work that polls for completion, errors and the timeout. See Note [NCCL stream
// ordering] and Note [NCCL errors and hangs] in nccl_communicator.h.
#include "comm/nccl/nccl_communicator.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <limits>
#include <mutex>
#include <new>
#include <span>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "comm/nccl/exact_sum_kernels.h"
#include "comm/nccl/exact_sum_plan.h"
#include "comm/nccl/nccl_backend.h"
#include "comm/nccl/nccl_check.h"
#include "comm/work_clock.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_memory.h"
#include "runtime/cuda/stream.h"
#include "runtime/exact_sum.h"
#include "runtime/logging.h"

namespace dpt::comm::nccl {
namespace {

// Makes `device` current for a scope and restores the previous one. The nothrow form is for
// error paths and destructors (a failure is logged).
class ScopedDevice {
 public:
  explicit ScopedDevice(int device) {
    DPT_CUDA_CHECK(cudaGetDevice(&previous_));
    if (previous_ != device) {
      DPT_CUDA_CHECK(cudaSetDevice(device));
      changed_ = true;
    }
  }
  ScopedDevice(int device, std::nothrow_t) noexcept {
    if (cudaGetDevice(&previous_) != cudaSuccess) return;
    if (previous_ != device) {
      const cudaError_t status = cudaSetDevice(device);
      DPT_CUDA_CHECK_LOG(status);
      changed_ = status == cudaSuccess;
    }
  }
  ScopedDevice(const ScopedDevice&) = delete;
  ScopedDevice& operator=(const ScopedDevice&) = delete;
  ~ScopedDevice() {
    if (changed_) DPT_CUDA_CHECK_LOG(cudaSetDevice(previous_));
  }

 private:
  int previous_ = 0;
  bool changed_ = false;
};

ncclRedOp_t to_nccl(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return ncclSum;
    case ReduceOp::kMax:
      return ncclMax;
    case ReduceOp::kMin:
      return ncclMin;
  }
  DPT_FAIL("unknown ReduceOp ", static_cast<int>(op));
}

void check_buffer(const char* op, const void* data, std::int64_t count) {
  DPT_CHECK(count >= 0, op, ": count ", count, " is negative");
  DPT_CHECK(data != nullptr || count == 0, op, ": null buffer for ", count, " elements");
}

// A count of 0 (whose pointer may be anything) goes to the host communicator, which validates it
// and does nothing; every rank passes the same count, so all ranks take the same path.
bool on_device(const void* data, std::int64_t count) {
  return count > 0 && cuda::is_device_pointer(data);
}

// Waiting: spin (yielding) for the first millisecond, since a bucket's reduction often finishes
// within it, then sleep in short steps so that a long wait does not occupy a core.
void back_off(double waited_s) {
  if (waited_s < 1e-3) {
    std::this_thread::yield();
  } else {
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

// Device memory stream-ordered on one stream (the NCCL stream) and kept between uses: the exact
// sums' scratch (Note [Exact sum on the GPU]). Every user enqueues on that stream, in order, so
// one buffer serves them one after the other; replacing it by a larger one frees the old one on
// the same stream, after the work queued before. The caller serialises calls.
class StreamScratch {
 public:
  StreamScratch() = default;
  StreamScratch(const StreamScratch&) = delete;
  StreamScratch& operator=(const StreamScratch&) = delete;
  ~StreamScratch() { release(); }

  // At least `bytes` of device memory on `device` for work queued on `stream` from now on.
  void* reserve(std::size_t bytes, int device, cudaStream_t stream) {
    if (bytes <= bytes_) return data_;
    release();
    data_ = cuda::allocate(bytes, device, stream);
    bytes_ = bytes;
    stream_ = stream;
    return data_;
  }

  // Frees on the stream it was reserved for (that stream's device need not be current).
  void release() noexcept {
    if (data_ != nullptr) DPT_CUDA_CHECK_LOG(cudaFreeAsync(data_, stream_));
    data_ = nullptr;
    bytes_ = 0;
  }

 private:
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
  cudaStream_t stream_ = nullptr;
};

// Device copies of the exact sums' chunk starts, one per distinct layout, uploaded on first use
// and kept: a per-call upload from pageable memory could stall the host (Note [Exact sum on the
// GPU]), and DataParallel's buckets repeat their layouts every step. Copies are stream-ordered on
// the NCCL stream like the scratch; the least recently used one goes (cudaFreeAsync on that
// stream, after the work that reads it) beyond kMaxLayouts. The caller serialises calls.
class ChunkStartsCache {
 public:
  static constexpr std::size_t kMaxLayouts = 1024;

  ChunkStartsCache() = default;
  ChunkStartsCache(const ChunkStartsCache&) = delete;
  ChunkStartsCache& operator=(const ChunkStartsCache&) = delete;
  ~ChunkStartsCache() { clear(); }

  const std::int64_t* find_or_upload(std::span<const std::int64_t> starts, int device,
                                     cudaStream_t stream) {
    const std::size_t key = hash(starts);
    ++uses_;
    for (Entry& entry : entries_) {
      if (entry.key == key && std::ranges::equal(entry.starts, starts)) {
        entry.last_use = uses_;
        return entry.device;
      }
    }
    if (entries_.size() >= kMaxLayouts) {
      const auto oldest = std::ranges::min_element(entries_, {}, &Entry::last_use);
      free(*oldest);
      entries_.erase(oldest);
    }
    const std::size_t bytes = starts.size() * sizeof(std::int64_t);
    Entry& entry = entries_.emplace_back();
    entry.key = key;
    entry.last_use = uses_;
    entry.stream = stream;
    try {
      entry.starts.assign(starts.begin(), starts.end());
      entry.device = static_cast<std::int64_t*>(cuda::allocate(bytes, device, stream));
      // From the entry's own vector, which outlives the copy.
      DPT_CUDA_CHECK(cudaMemcpyAsync(entry.device, entry.starts.data(), bytes,
                                     cudaMemcpyHostToDevice, stream));
    } catch (...) {
      free(entry);
      entries_.pop_back();
      throw;
    }
    return entry.device;
  }

  void clear() noexcept {
    for (Entry& entry : entries_) free(entry);
    entries_.clear();
  }

 private:
  struct Entry {
    std::vector<std::int64_t> starts;
    std::size_t key = 0;
    std::uint64_t last_use = 0;
    std::int64_t* device = nullptr;
    cudaStream_t stream = nullptr;
  };

  static std::size_t hash(std::span<const std::int64_t> starts) {
    std::size_t h = starts.size();
    for (const std::int64_t v : starts) h = h * 1099511628211u ^ static_cast<std::size_t>(v);
    return h;
  }
  static void free(Entry& entry) noexcept {
    if (entry.device != nullptr) DPT_CUDA_CHECK_LOG(cudaFreeAsync(entry.device, entry.stream));
    entry.device = nullptr;
  }

  std::vector<Entry> entries_;
  std::uint64_t uses_ = 0;
};

}  // namespace

// The NCCL communicator, its stream and what guards them. Shared with every Work handed out, so
// the communicator is finalized only when nothing can still wait on it.
struct NcclCommunicator::State {
  State(int device_index, double timeout) : device(device_index), timeout_s(timeout) {
    int least = 0, greatest = 0;
    DPT_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
    stream = cuda::Stream::create(greatest);  // the highest priority: a lower number runs first
    ready = cuda::Event::create();
  }
  State(const State&) = delete;
  State& operator=(const State&) = delete;
  ~State() {
    const ScopedDevice scoped(device, std::nothrow);
    std::lock_guard lock(mutex);
    comm.reset();  // before the stream it may still use (members die after this body)
    exact_scratch.release();
    exact_starts.clear();
  }

  // "ncclCommGetAsyncError" for `what`: ncclSuccess, ncclInProgress or an error (a failure of the
  // query itself counts as one). Throws kComm when the communicator was aborted already.
  ncclResult_t async_state(const std::string& what) {
    std::lock_guard lock(mutex);
    throw_if_aborted(what);
    ncclResult_t state = ncclSuccess;
    const ncclResult_t status = ncclCommGetAsyncError(comm.get(), &state);
    return status == ncclSuccess ? state : status;
  }

  // Caller holds `mutex`.
  void throw_if_aborted(const std::string& what) const {
    if (comm) return;
    ::dpt::detail::throw_error(
        ErrorKind::kComm, "NcclCommunicator",
        ::dpt::detail::str(what, ": the NCCL communicator was aborted after an earlier failure (",
                           abort_reason, ')'),
        __FILE__, __LINE__);
  }

  // Aborts the communicator and throws kComm with `sentence`.
  [[noreturn]] void abort_and_throw(const std::string& sentence, const char* expr) {
    {
      const ScopedDevice scoped(device, std::nothrow);
      std::lock_guard lock(mutex);
      comm.abort();
      if (abort_reason.empty()) abort_reason = sentence;
    }
    ::dpt::detail::throw_error(ErrorKind::kComm, expr, sentence, __FILE__, __LINE__);
  }

  [[noreturn]] void fail(const std::string& what, ncclResult_t status) {
    // The error text first: ncclGetLastError must be read before the abort adds its own.
    abort_and_throw(::dpt::detail::str(what, " failed: ", error_string(status),
                                       "; the communicator was aborted"),
                    "ncclCommGetAsyncError");
  }

  // Polls until `done(async state)` holds, checking ncclCommGetAsyncError each time: an error
  // aborts and throws, and so does waiting longer than timeout_s (measured from this call, so
  // that host work between a launch and its wait never counts against a collective).
  template <typename Done>
  void poll(const std::string& what, Done done) {
    const double start = detail::steady_seconds();
    for (;;) {
      const ncclResult_t state = async_state(what);
      if (state != ncclSuccess && state != ncclInProgress) fail(what, state);
      if (done(state)) return;
      const double waited = detail::steady_seconds() - start;
      if (waited > timeout_s) {
        abort_and_throw(::dpt::detail::str(what, " did not complete within ", timeout_s,
                                           " s; the communicator was aborted"),
                        "NcclOptions::timeout_s");
      }
      back_off(waited);
    }
  }

  bool aborted() {
    std::lock_guard lock(mutex);
    return !comm;
  }

  // Aborts without throwing (NcclCommunicator::abort, destruction while unwinding).
  void abort_quietly(const std::string& why) noexcept {
    const ScopedDevice scoped(device, std::nothrow);
    std::lock_guard lock(mutex);
    if (!comm) return;
    comm.abort();
    try {
      abort_reason = why;
    } catch (...) {  // no memory for the reason: the abort itself is done
    }
  }

  const int device;
  const double timeout_s;
  cuda::Stream stream;  // the NCCL stream; declared before comm, so it outlives it
  // Guards everything below, and every NCCL call on comm.
  std::mutex mutex;
  cuda::Event ready;  // recorded on the compute stream before each launch
  UniqueNcclComm comm;
  std::string abort_reason;    // why comm was aborted (empty while it lives)
  std::uint64_t launched = 0;  // collectives launched so far: their sequence numbers
  // On `stream`: Note [Exact sum on the GPU].
  StreamScratch exact_scratch;
  ChunkStartsCache exact_starts;
  // Held for the whole launch of an exact sum (taken before `mutex`): its steps release `mutex`
  // in between (to poll NCCL) and share exact_scratch.
  std::mutex exact_mutex;
};

namespace {

using State = NcclCommunicator::State;

// A collective launched on the NCCL stream. Used by the thread that launched it (or one thread at a
// time): its own fields are not locked.
class NcclWork final : public Work {
 public:
  NcclWork(std::shared_ptr<State> state, cuda::Event started, cuda::Event done, std::string what,
           double start)
      : state_(std::move(state)),
        started_(std::move(started)),
        done_(std::move(done)),
        what_(std::move(what)),
        start_(start) {}
  NcclWork(const NcclWork&) = delete;
  NcclWork& operator=(const NcclWork&) = delete;
  // The collective may still write the caller's buffer: wait for it, never throwing. Not after an
  // abort: that error was thrown already, and the abort stopped the collective.
  ~NcclWork() override {
    if (waited_ || error_ || state_->aborted()) return;
    try {
      wait();
    } catch (const std::exception& e) {
      log(LogLevel::kWarning, "an NCCL collective nobody waited for failed: ", e.what());
    } catch (...) {
      log(LogLevel::kWarning, "an NCCL collective nobody waited for failed");
    }
  }

  void wait() override {
    if (error_) std::rethrow_exception(error_);
    if (waited_) return;
    try {
      state_->poll(what_, [&](ncclResult_t) { return done_.query(); });
      if (end_ == 0.0) end_ = detail::steady_seconds();
      // Kernels queued on the compute stream from now on (the optimizer reading the reduced
      // gradients, a stream-ordered free of the buffer) run after the collective.
      done_.make_wait(cuda::compute_stream(state_->device));
      waited_ = true;
    } catch (...) {
      error_ = std::current_exception();
      throw;
    }
  }

  // Kernels queued on the compute stream from now on (the optimizer) run after the collective;
  // the host goes on. wait() later polls for errors and the timeout.
  bool order_on_device() override {
    if (error_) std::rethrow_exception(error_);
    done_.make_wait(cuda::compute_stream(state_->device));
    return true;
  }

  // When the NCCL stream reached the collective (its inputs were ready) to when it completed, on
  // the device's clock: what the collective itself took, whenever the host looked.
  double duration_ms() const override {
    if (!waited_) return 0.0;
    return static_cast<double>(done_.elapsed_ms_since(started_));
  }

  bool test() override {
    if (waited_ || error_) return true;
    const bool done = done_.query();  // throws when a kernel before it failed
    if (done && end_ == 0.0) end_ = detail::steady_seconds();
    return done;
  }

  // Host-observed times: start is when the collective was enqueued (NCCL has no callback for the
  // moment its kernel starts), end when wait() or test() first saw the done event complete. So a
  // collective that finished while the host computed gets the end of that computation.
  double start_time() const override { return start_; }
  double end_time() const override { return end_; }

 private:
  std::shared_ptr<State> state_;
  cuda::Event started_;  // timed, recorded on the NCCL stream just before the collective
  cuda::Event done_;     // timed, recorded after it
  std::string what_;
  double start_;
  double end_ = 0.0;
  bool waited_ = false;
  std::exception_ptr error_;
};

// Enqueues one NCCL collective (Note [NCCL stream ordering]): `describe(sequence number)` names
// it in errors; `enqueue(comm, stream)` is the NCCL call.
template <typename Describe, typename Enqueue>
std::unique_ptr<NcclWork> launch(const std::shared_ptr<State>& state, Describe describe,
                                 Enqueue enqueue) {
  const ScopedDevice scoped(state->device);
  cuda::Event started = cuda::Event::create_timed();
  cuda::Event done = cuda::Event::create_timed();
  std::string what;
  double start = 0.0;
  ncclResult_t status = ncclSuccess;
  {
    std::lock_guard lock(state->mutex);
    what = describe(++state->launched);
    state->throw_if_aborted(what);
    // cudaStreamWaitEvent waits for the event's state at this call, so one event serves every
    // launch (recorded and waited on under the lock).
    state->ready.record(cuda::compute_stream(state->device));
    state->ready.make_wait(state->stream.get());
    started.record(state->stream.get());
    start = detail::steady_seconds();
    status = enqueue(state->comm.get(), state->stream.get());
  }
  // Non-blocking communicator: ncclInProgress means the enqueue goes on inside NCCL (e.g.
  // connecting to peers); nothing may be queued on the NCCL stream before it reads ncclSuccess.
  if (status == ncclInProgress) {
    state->poll(what, [](ncclResult_t s) { return s == ncclSuccess; });
  } else if (status != ncclSuccess) {
    state->fail(what, status);
  }
  done.record(state->stream.get());
  return std::make_unique<NcclWork>(state, std::move(started), std::move(done), std::move(what),
                                    start);
}

}  // namespace

NcclCommunicator::NcclCommunicator(std::unique_ptr<Communicator> host, int cuda_device,
                                   NcclOptions options)
    : host_(std::move(host)),
      device_(cuda_device),
      options_(options),
      uncaught_at_construction_(std::uncaught_exceptions()) {
  DPT_CHECK(host_ != nullptr, "NcclCommunicator: the host communicator is null");
  DPT_CHECK(device_ >= 0, "NcclCommunicator: CUDA device ", device_, " is negative");
  DPT_CHECK(options_.timeout_s > 0.0, "NcclCommunicator: timeout ", options_.timeout_s,
            " s is not a positive number (infinity: no timeout)");
  // The device stays current: the calling thread drives it (docs/DESIGN.md).
  DPT_CUDA_CHECK(cudaSetDevice(device_));
  state_ = std::make_shared<State>(device_, options_.timeout_s);

  ncclUniqueId id{};
  if (host_->rank() == 0) DPT_NCCL_CHECK(ncclGetUniqueId(&id));
  host_->broadcast(&id, static_cast<std::int64_t>(sizeof id), 0);

  // Non-blocking (blocking = 0): ncclCommInitRankConfig returns at once and the initialisation,
  // which waits for every rank to join, is polled with the timeout. A blocking ncclCommInitRank
  // would hang for good when a rank fails before joining; and collectives on a non-blocking
  // communicator can be polled the same way (Note [NCCL errors and hangs]).
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  const std::string what = ::dpt::detail::str("NCCL initialisation of rank ", rank(), " of ",
                                              world_size(), " on CUDA device ", device_);
  ncclComm_t comm = nullptr;
  const ncclResult_t status = ncclCommInitRankConfig(&comm, world_size(), id, rank(), &config);
  {
    std::lock_guard lock(state_->mutex);
    state_->comm = UniqueNcclComm(comm, options_.timeout_s);
  }
  if (status != ncclSuccess && status != ncclInProgress) state_->fail(what, status);
  state_->poll(what, [](ncclResult_t s) { return s == ncclSuccess; });
}

namespace {

// In-place ncclAllReduce of `count` elements of `type` ("floats", "doubles" in messages).
std::unique_ptr<NcclWork> launch_all_reduce(const std::shared_ptr<State>& state, void* data,
                                            std::int64_t count, ncclDataType_t type,
                                            const char* unit, ReduceOp op) {
  const ncclRedOp_t nccl_op = to_nccl(op);
  return launch(
      state,
      [&](std::uint64_t seq) {
        return ::dpt::detail::str("NCCL all_reduce of ", count, " ", unit, " (collective #", seq,
                                  ')');
      },
      [&](ncclComm_t comm, cudaStream_t stream) {
        return ncclAllReduce(data, data, static_cast<std::size_t>(count), type, nccl_op, comm,
                             stream);
      });
}

// Note [Exact sum on the GPU] (exact_sum_kernels.cu): three collectives with kernels between them,
// as one Work from `started` (after the compute stream's pending work) to `done`. Each step
// enqueues under the lock and ends in an NCCL call, whose ncclInProgress is polled outside the
// lock before the next step enqueues anything (Note [NCCL errors and hangs]). A failure after the
// first NCCL call leaves the peers waiting in the next one, which this rank will never issue: the
// communicator is aborted then, so that they fail instead of waiting for the timeout.
std::unique_ptr<NcclWork> launch_exact_sum(const std::shared_ptr<State>& state,
                                           const ExactSumBucket& bucket, int rank, int world) {
  const ScopedDevice scoped(state->device);
  const auto chunks = static_cast<std::int64_t>(bucket.chunk_starts.size());
  const ExactSumPlan plan = plan_exact_sum(bucket.count, chunks, rank, world);
  const int headroom = exact::headroom_bits(bucket.total_shards);
  const auto block = static_cast<std::size_t>(plan.block);
  cuda::Event started = cuda::Event::create_timed();
  cuda::Event done = cuda::Event::create_timed();
  const std::lock_guard sequence(state->exact_mutex);  // the scratch and starts cache are ours
  const cudaStream_t stream = state->stream.get();
  std::string what;
  double start = 0.0;
  bool issued = false;  // an NCCL call of this exact sum was enqueued
  // Ends a step: polls an ncclInProgress until the call is enqueued; an error aborts and throws.
  const auto settle = [&](ncclResult_t status, const char* step) {
    issued = true;
    if (status == ncclInProgress) {
      state->poll(what + ", " + step, [](ncclResult_t s) { return s == ncclSuccess; });
    } else if (status != ncclSuccess) {
      state->fail(what + ", " + step, status);
    }
  };
  try {
    std::int32_t* codes = nullptr;
    std::int64_t* sums = nullptr;
    float* floats = nullptr;
    const std::int64_t* starts = nullptr;
    ncclResult_t status = ncclSuccess;
    {
      std::lock_guard lock(state->mutex);
      what = ::dpt::detail::str("NCCL exact_sum of ", bucket.count, " floats in ", chunks,
                                " chunks, ", bucket.shards.size(), " of ", bucket.total_shards,
                                " shards on this rank (collective #", ++state->launched, ')');
      state->throw_if_aborted(what);
      auto* scratch =
          static_cast<char*>(state->exact_scratch.reserve(plan.bytes, state->device, stream));
      codes = reinterpret_cast<std::int32_t*>(scratch + plan.codes_offset);
      sums = reinterpret_cast<std::int64_t*>(scratch + plan.sums_offset);
      floats = plan.gather_into_out ? bucket.out
                                    : reinterpret_cast<float*>(scratch + plan.floats_offset);
      starts = state->exact_starts.find_or_upload(bucket.chunk_starts, state->device, stream);
      // As launch(): one event serves every launch, recorded and waited on under the lock.
      state->ready.record(cuda::compute_stream(state->device));
      state->ready.make_wait(stream);
      started.record(stream);
      start = detail::steady_seconds();
      exact_chunk_codes(stream, bucket.shards, bucket.count, starts, chunks, codes);
      status = ncclAllReduce(codes, codes, static_cast<std::size_t>(chunks), ncclInt32, ncclMax,
                             state->comm.get(), stream);
    }
    settle(status, "MAX all-reduce of the chunk codes");
    {
      std::lock_guard lock(state->mutex);
      state->throw_if_aborted(what);
      exact_quantize_sum(stream, bucket.shards, bucket.count, plan.padded, starts, chunks, codes,
                         headroom, sums);
      // In place (recvbuff == sendbuff + rank * recvcount): this rank's block of the sums.
      status = ncclReduceScatter(sums, sums + plan.first(), block, ncclInt64, ncclSum,
                                 state->comm.get(), stream);
    }
    settle(status, "int64 reduce-scatter of the sums");
    {
      std::lock_guard lock(state->mutex);
      state->throw_if_aborted(what);
      exact_dequantize(stream, sums + plan.first(), plan.first(), plan.block, bucket.count, starts,
                       chunks, codes, headroom, floats + plan.first());
      // In place (sendbuff == recvbuff + rank * sendcount).
      status = ncclAllGather(floats + plan.first(), floats, block, ncclFloat, state->comm.get(),
                             stream);
    }
    settle(status, "float all-gather of the result");
    if (!plan.gather_into_out) {
      std::lock_guard lock(state->mutex);
      DPT_CUDA_CHECK(cudaMemcpyAsync(bucket.out, floats,
                                     static_cast<std::size_t>(bucket.count) * sizeof(float),
                                     cudaMemcpyDeviceToDevice, stream));
    }
    done.record(stream);
  } catch (...) {
    if (issued) {
      state->abort_quietly(what + " failed part-way; the peers' matching collectives were left "
                                  "waiting");
    }
    throw;
  }
  return std::make_unique<NcclWork>(state, std::move(started), std::move(done), std::move(what),
                                    start);
}

// Whether every shard is device memory (true) or none is (false); a mixture is an error.
bool shards_on_device(const ExactSumBucket& bucket, bool out_on_device) {
  for (std::size_t s = 0; s < bucket.shards.size(); ++s) {
    const float* shard = bucket.shards[s];
    DPT_CHECK(shard != nullptr, "exact_sum: shard ", s, " of ", bucket.shards.size(),
              " is null");
    DPT_CHECK(cuda::is_device_pointer(shard) == out_on_device, "exact_sum: shard ", s, " of ",
              bucket.shards.size(), " is in ", out_on_device ? "host" : "device",
              " memory but the output is in ", out_on_device ? "device" : "host",
              " memory; all must be in the same kind");
  }
  return out_on_device;
}

}  // namespace

NcclCommunicator::~NcclCommunicator() {
  // Note [Abort on unwind] (src/nn/parallel/data_parallel.cpp): destroyed by an error's unwinding,
  // this rank will issue no more collectives, and finalizing would wait for the peers' matching
  // ones. Otherwise State's destructor finalizes once the last Work is gone.
  if (std::uncaught_exceptions() > uncaught_at_construction_) abort();
}

void NcclCommunicator::abort() noexcept {
  if (state_) state_->abort_quietly("this rank aborted the communicator after an error");
}

std::unique_ptr<Work> NcclCommunicator::all_reduce_async(float* data, std::int64_t count,
                                                         ReduceOp op) {
  check_buffer("all_reduce", data, count);
  if (!on_device(data, count)) return host_->all_reduce_async(data, count, op);
  return launch_all_reduce(state_, data, count, ncclFloat, "floats", op);
}

std::unique_ptr<Work> NcclCommunicator::all_reduce_bf16_async(BFloat16* data, std::int64_t count) {
  check_buffer("all_reduce_bf16", data, count);
  if (!on_device(data, count)) return host_->all_reduce_bf16_async(data, count);
  return launch_all_reduce(state_, data, count, ncclBfloat16, "bf16 values", ReduceOp::kSum);
}

void NcclCommunicator::all_reduce(double* data, std::int64_t count, ReduceOp op) {
  check_buffer("all_reduce", data, count);
  if (!on_device(data, count)) {
    host_->all_reduce(data, count, op);
    return;
  }
  launch_all_reduce(state_, data, count, ncclDouble, "doubles", op)->wait();
}

void NcclCommunicator::all_reduce(std::int64_t* data, std::int64_t count, ReduceOp op) {
  check_buffer("all_reduce", data, count);
  if (!on_device(data, count)) {
    host_->all_reduce(data, count, op);
    return;
  }
  launch_all_reduce(state_, data, count, ncclInt64, "int64s", op)->wait();
}

std::unique_ptr<Work> NcclCommunicator::exact_sum_async(ExactSumBucket bucket) {
  check_buffer("exact_sum", bucket.out, bucket.count);
  // A count of 0 goes to the host communicator, which validates it and does nothing.
  if (bucket.count == 0 || !shards_on_device(bucket, on_device(bucket.out, bucket.count))) {
    return host_->exact_sum_async(std::move(bucket));
  }
  DPT_CHECK(bucket.owned_counts.empty(),
            "exact_sum: the NCCL communicator sums whole buckets only (no sharded optimizer)");
  exact::check_chunks("exact_sum", bucket.count, bucket.chunk_starts, bucket.total_shards,
                      static_cast<std::int64_t>(bucket.shards.size()));
  return launch_exact_sum(state_, bucket, rank(), world_size());
}

void NcclCommunicator::broadcast(void* data, std::int64_t count_bytes, int root) {
  check_buffer("broadcast", data, count_bytes);
  DPT_CHECK(root >= 0 && root < world_size(), "broadcast: root ", root,
            " is not a rank of a world of ", world_size());
  if (!on_device(data, count_bytes)) {
    host_->broadcast(data, count_bytes, root);
    return;
  }
  launch(
      state_,
      [&](std::uint64_t seq) {
        return ::dpt::detail::str("NCCL broadcast of ", count_bytes, " bytes from rank ", root,
                                  " (collective #", seq, ')');
      },
      [&](ncclComm_t comm, cudaStream_t stream) {
        // In place: sendbuff == recvbuff.
        return ncclBroadcast(data, data, static_cast<std::size_t>(count_bytes), ncclUint8, root,
                             comm, stream);
      })
      ->wait();
}

std::vector<std::string> NcclCommunicator::all_gather(const std::string& local) {
  return host_->all_gather(local);
}

void NcclCommunicator::reduce_scatter(float* data, std::int64_t block_count, ReduceOp op) {
  check_buffer("reduce_scatter", data, block_count);
  const int size = world_size();
  DPT_CHECK(block_count <= INT64_MAX / size, "reduce_scatter: ", size, " blocks of ", block_count,
            " floats overflow a 64-bit count");
  if (!on_device(data, block_count)) {
    host_->reduce_scatter(data, block_count, op);
    return;
  }
  const ncclRedOp_t nccl_op = to_nccl(op);
  // In place as NCCL defines it (recvbuff == sendbuff + rank * recvcount): this rank's block
  // receives the reduction, which is the interface's contract.
  float* block = data + static_cast<std::int64_t>(rank()) * block_count;
  launch(
      state_,
      [&](std::uint64_t seq) {
        return ::dpt::detail::str("NCCL reduce_scatter of ", size, " blocks of ", block_count,
                                  " floats (collective #", seq, ')');
      },
      [&](ncclComm_t comm, cudaStream_t stream) {
        return ncclReduceScatter(data, block, static_cast<std::size_t>(block_count), ncclFloat,
                                 nccl_op, comm, stream);
      })
      ->wait();
}

namespace {

std::string describe_uneven(const char* op, std::int64_t total, std::uint64_t seq) {
  return ::dpt::detail::str("NCCL ", op, " of ", total, " floats in uneven blocks (collective #",
                            seq, ')');
}

// gather and scatter: whether the ranks' buffers are device memory. A rank whose own block is
// empty (and which is not the root) cannot tell from its pointer, so the ranks agree over the
// host communicator (one small all-reduce: these run at checkpoints and resumes only), and
// buffers of both kinds across ranks are an error rather than a hang.
bool agree_on_device(Communicator& host, const char* op, const void* data, bool known) {
  const bool device = known && cuda::is_device_pointer(data);
  std::int64_t kinds[2] = {known && device ? 1 : 0, known && !device ? 1 : 0};
  host.all_reduce(kinds, 2, ReduceOp::kSum);
  DPT_CHECK(kinds[0] == 0 || kinds[1] == 0, op, ": ", kinds[0],
            " rank(s) passed device memory and ", kinds[1],
            " host memory; every rank must pass the same kind");
  return kinds[0] > 0;
}

// One NCCL group holding `call(r, block start, count)` for every non-empty block r other than
// `skip` (-1: none). The group ends with ncclGroupEnd's status (ncclInProgress on a non-blocking
// communicator: launch() polls it), or the first failed call's.
template <typename Call>
ncclResult_t grouped_per_block(const std::vector<std::int64_t>& starts, int skip, Call call) {
  const ncclResult_t started = ncclGroupStart();
  if (started != ncclSuccess) return started;
  ncclResult_t inside = ncclSuccess;
  for (std::size_t r = 0; r + 1 < starts.size() && inside == ncclSuccess; ++r) {
    const auto count = static_cast<std::size_t>(starts[r + 1] - starts[r]);
    if (count == 0 || static_cast<int>(r) == skip) continue;
    inside = call(static_cast<int>(r), starts[r], count);
  }
  const ncclResult_t ended = ncclGroupEnd();
  return inside != ncclSuccess ? inside : ended;
}

}  // namespace

std::unique_ptr<Work> NcclCommunicator::reduce_scatter_async(float* data,
                                                             std::vector<std::int64_t> counts,
                                                             ReduceOp op) {
  const std::vector<std::int64_t> starts =
      uneven_block_starts("reduce_scatter_async", counts, world_size());
  check_buffer("reduce_scatter_async", data, starts.back());
  if (!on_device(data, starts.back())) {
    return host_->reduce_scatter_async(data, std::move(counts), op);
  }
  const ncclRedOp_t nccl_op = to_nccl(op);
  return launch(
      state_,
      [&](std::uint64_t seq) { return describe_uneven("reduce_scatter", starts.back(), seq); },
      [&](ncclComm_t comm, cudaStream_t stream) {
        return grouped_per_block(starts, -1, [&](int r, std::int64_t start, std::size_t n) {
          return ncclReduce(data + start, data + start, n, ncclFloat, nccl_op, r, comm, stream);
        });
      });
}

std::unique_ptr<Work> NcclCommunicator::all_gather_async(float* data,
                                                         std::vector<std::int64_t> counts) {
  const std::vector<std::int64_t> starts = uneven_block_starts("all_gather_async", counts, world_size());
  check_buffer("all_gather_async", data, starts.back());
  if (!on_device(data, starts.back())) return host_->all_gather_async(data, std::move(counts));
  return launch(
      state_, [&](std::uint64_t seq) { return describe_uneven("all_gather", starts.back(), seq); },
      [&](ncclComm_t comm, cudaStream_t stream) {
        return grouped_per_block(starts, -1, [&](int r, std::int64_t start, std::size_t n) {
          return ncclBroadcast(data + start, data + start, n, ncclFloat, r, comm, stream);
        });
      });
}

void NcclCommunicator::gather(const float* local, float* all,
                              const std::vector<std::int64_t>& counts, int root) {
  // `local` is only read when gathering.
  exchange_with_root("gather", all, const_cast<float*>(local), counts, root, /*to_root=*/true);
}

void NcclCommunicator::scatter(const float* all, float* local,
                               const std::vector<std::int64_t>& counts, int root) {
  // `all` is only read when scattering.
  exchange_with_root("scatter", const_cast<float*>(all), local, counts, root, /*to_root=*/false);
}

void NcclCommunicator::exchange_with_root(const char* op, float* all, float* local,
                                          const std::vector<std::int64_t>& counts, int root,
                                          bool to_root) {
  DPT_CHECK(root >= 0 && root < world_size(), op, ": root ", root,
            " is not a rank of a world of ", world_size());
  const std::vector<std::int64_t> starts = uneven_block_starts(op, counts, world_size());
  const std::int64_t mine = counts[static_cast<std::size_t>(rank())];
  check_buffer(op, local, mine);
  const bool root_knows = rank() == root && starts.back() > 0;
  if (!agree_on_device(*host_, op, mine > 0 ? local : all, mine > 0 || root_knows)) {
    if (to_root) {
      host_->gather(local, all, counts, root);
    } else {
      host_->scatter(all, local, counts, root);
    }
    return;
  }
  launch(
      state_, [&](std::uint64_t seq) { return describe_uneven(op, starts.back(), seq); },
      [&](ncclComm_t comm, cudaStream_t stream) {
        if (rank() == root && mine > 0) {  // the root's own block: a copy on the stream
          float* root_block = all + starts[static_cast<std::size_t>(root)];
          DPT_CUDA_CHECK(cudaMemcpyAsync(to_root ? root_block : local, to_root ? local : root_block,
                                         static_cast<std::size_t>(mine) * sizeof(float),
                                         cudaMemcpyDeviceToDevice, stream));
        }
        if (rank() != root) {
          // This rank's block alone, to or from the root.
          return grouped_per_block({0, mine}, -1, [&](int, std::int64_t, std::size_t n) {
            return to_root ? ncclSend(local, n, ncclFloat, root, comm, stream)
                           : ncclRecv(local, n, ncclFloat, root, comm, stream);
          });
        }
        return grouped_per_block(starts, root, [&](int r, std::int64_t start, std::size_t n) {
          return to_root ? ncclRecv(all + start, n, ncclFloat, r, comm, stream)
                         : ncclSend(all + start, n, ncclFloat, r, comm, stream);
        });
      })
      ->wait();
}

void NcclCommunicator::barrier() { host_->barrier(); }

double NcclCommunicator::native_all_reduce_seconds(float* data, std::int64_t count) {
  check_buffer("native_all_reduce", data, count);
  if (!on_device(data, count)) return host_->native_all_reduce_seconds(data, count);
  {
    // The buffer's producers finish first, outside the measurement.
    const ScopedDevice scoped(device_);
    DPT_CUDA_CHECK(cudaStreamSynchronize(cuda::compute_stream(device_)));
  }
  // Completion is polled (as in wait()) rather than awaited with cudaStreamSynchronize, so that a
  // dead peer ends in the timeout instead of a hang; the difference is the polling granularity.
  const std::unique_ptr<NcclWork> work = launch(
      state_,
      [&](std::uint64_t seq) {
        return ::dpt::detail::str("NCCL native all_reduce of ", count, " floats (collective #", seq,
                                  ')');
      },
      [&](ncclComm_t comm, cudaStream_t stream) {
        return ncclAllReduce(data, data, static_cast<std::size_t>(count), ncclFloat, ncclSum, comm,
                             stream);
      });
  work->wait();
  return work->end_time() - work->start_time();
}

std::unique_ptr<Communicator> make_communicator(std::unique_ptr<Communicator> host,
                                                int cuda_device) {
  NcclOptions options;
  const double timeout = host->collective_timeout();
  options.timeout_s = timeout > 0.0 ? timeout : std::numeric_limits<double>::infinity();
  return std::make_unique<NcclCommunicator>(std::move(host), cuda_device, options);
}

}  // namespace dpt::comm::nccl
