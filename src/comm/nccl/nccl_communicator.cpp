// SPDX-License-Identifier: MIT
// NcclCommunicator: initialisation over the host communicator, launches ordered against the
// compute stream, Work that polls for completion, errors and the timeout. See Note [NCCL stream
// ordering] and Note [NCCL errors and hangs] in nccl_communicator.h.
#include "comm/nccl/nccl_communicator.h"

#include <cuda_runtime_api.h>

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <new>
#include <string_view>
#include <thread>
#include <utility>

#include "comm/nccl/nccl_backend.h"
#include "comm/nccl/nccl_check.h"
#include "comm/work_clock.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_memory.h"
#include "runtime/cuda/stream.h"
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

}  // namespace

NcclOptions NcclOptions::from_environment() {
  NcclOptions options;
  const char* text = std::getenv("DPT_NCCL_TIMEOUT_S");
  if (text == nullptr || *text == '\0') return options;
  const std::string_view view(text);
  double value = 0.0;
  // from_chars, not strtod: independent of the locale's decimal point.
  const auto [end, ec] = std::from_chars(view.data(), view.data() + view.size(), value);
  DPT_CHECK(
      ec == std::errc() && end == view.data() + view.size() && std::isfinite(value) && value > 0.0,
      "DPT_NCCL_TIMEOUT_S='", view,
      "' is not a positive number of seconds (the NCCL timeout; unset it for the default ",
      options.timeout_s, " s)");
  options.timeout_s = value;
  return options;
}

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
  DPT_CHECK(std::isfinite(options_.timeout_s) && options_.timeout_s > 0.0,
            "NcclCommunicator: timeout ", options_.timeout_s, " s is not a positive number");
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
  if (!on_device(bucket.out, bucket.count)) return host_->exact_sum_async(std::move(bucket));
  DPT_FAIL("exact_sum: the exact gradient sum of device memory is not built yet (use --device cpu "
           "for --exact)");
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
  return std::make_unique<NcclCommunicator>(std::move(host), cuda_device);
}

}  // namespace dpt::comm::nccl
