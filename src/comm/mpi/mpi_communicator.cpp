// SPDX-License-Identifier: MIT
// MpiCommunicator: job queue, communication thread, Work, and the MPI calls of each collective
// (counts above INT_MAX split into chunks). See Note [One MPI thread] in mpi_communicator.h.
#include "comm/mpi/mpi_communicator.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string_view>
#include <thread>

#include "comm/mpi/mpi_backend.h"
#include "comm/work_clock.h"
#include "runtime/exact_sum.h"
#include "runtime/logging.h"

namespace dpt::comm::mpi {

// Shared by the Work handed to the caller and the job on the communication thread.
struct MpiCommunicator::WorkState {
  // Guards every field below; cv signals done.
  std::mutex mutex;
  std::condition_variable cv;
  bool done = false;
  bool error_seen = false;  // wait() rethrew it, so the destructor need not log it
  std::exception_ptr error;
  double start = 0.0;
  double end = 0.0;
};

namespace {

using WorkState = MpiCommunicator::WorkState;

class AsyncWork final : public Work {
 public:
  explicit AsyncWork(std::shared_ptr<WorkState> state) : state_(std::move(state)) {}
  AsyncWork(const AsyncWork&) = delete;
  AsyncWork& operator=(const AsyncWork&) = delete;
  // The job may still write the caller's buffer: wait for it (never throwing; an error nobody
  // waited for is logged rather than lost).
  ~AsyncWork() override {
    std::unique_lock lock(state_->mutex);
    state_->cv.wait(lock, [&] { return state_->done; });
    if (state_->error && !state_->error_seen) {
      try {
        std::rethrow_exception(state_->error);
      } catch (const std::exception& e) {
        log(LogLevel::kWarning, "a collective nobody waited for failed: ", e.what());
      } catch (...) {
        log(LogLevel::kWarning, "a collective nobody waited for failed");
      }
    }
  }

  void wait() override {
    std::unique_lock lock(state_->mutex);
    state_->cv.wait(lock, [&] { return state_->done; });
    if (state_->error) {
      state_->error_seen = true;
      std::rethrow_exception(state_->error);
    }
  }
  bool test() override {
    std::lock_guard lock(state_->mutex);
    return state_->done;
  }
  double start_time() const override {
    std::lock_guard lock(state_->mutex);
    return state_->start;
  }
  double end_time() const override {
    std::lock_guard lock(state_->mutex);
    return state_->end;
  }

 private:
  std::shared_ptr<WorkState> state_;
};

MPI_Op to_mpi(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return MPI_SUM;
    case ReduceOp::kMax:
      return MPI_MAX;
    case ReduceOp::kMin:
      return MPI_MIN;
  }
  DPT_FAIL("unknown ReduceOp ", static_cast<int>(op));
}

void check_buffer(const char* op, const void* data, std::int64_t count) {
  DPT_CHECK(count >= 0, op, ": count ", count, " is negative");
  DPT_CHECK(data != nullptr || count == 0, op, ": null buffer for ", count, " elements");
}

// Test hook: DPT_COMM_MAX_CHUNK_COUNT=n caps one MPI call at n elements, so that the chunking
// written for counts above INT_MAX runs in tests with small buffers.
std::int64_t max_chunk_count_from_env() {
  const char* text = std::getenv("DPT_COMM_MAX_CHUNK_COUNT");
  if (text == nullptr || *text == '\0') return INT_MAX;
  const std::string_view view(text);
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(view.data(), view.data() + view.size(), value);
  DPT_CHECK(ec == std::errc() && end == view.data() + view.size() && value >= 1 && value <= INT_MAX,
            "DPT_COMM_MAX_CHUNK_COUNT='", view, "' is not an integer in [1, ", INT_MAX, "]");
  return value;
}

}  // namespace

namespace {
// The user reduction of Note [bf16 all-reduce].
void bf16_sum(void* in, void* inout, int* len, MPI_Datatype* /*type*/) {
  const auto* a = static_cast<const BFloat16*>(in);
  auto* b = static_cast<BFloat16*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = to_bf16(to_float(a[i]) + to_float(b[i]));
}
}  // namespace

MpiCommunicator::MpiCommunicator() : max_chunk_count_(max_chunk_count_from_env()) {
  MPI_Op bf16_sum_op = MPI_OP_NULL;
  DPT_MPI_CHECK(MPI_Op_create(&bf16_sum, /*commute=*/1, &bf16_sum_op));
  bf16_sum_.reset(bf16_sum_op);
  int provided = MPI_THREAD_SINGLE;
  DPT_MPI_CHECK(MPI_Query_thread(&provided));
  DPT_CHECK_KIND(ErrorKind::kComm, provided >= MPI_THREAD_SERIALIZED,
                 "MpiCommunicator: MPI was initialised with thread level ", provided,
                 "; the communication thread needs MPI_THREAD_SERIALIZED or better");
  // A private duplicate: our collectives can never match another library's on MPI_COMM_WORLD.
  comm_ = duplicate_returning_errors(MPI_COMM_WORLD);
  DPT_MPI_CHECK(MPI_Comm_rank(comm_.get(), &rank_));
  DPT_MPI_CHECK(MPI_Comm_size(comm_.get(), &size_));

  MPI_Comm node = MPI_COMM_NULL;
  DPT_MPI_CHECK(
      MPI_Comm_split_type(comm_.get(), MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node));
  const UniqueComm node_comm(node);
  DPT_MPI_CHECK(MPI_Comm_rank(node_comm.get(), &local_rank_));
  DPT_MPI_CHECK(MPI_Comm_size(node_comm.get(), &local_size_));
  // Each node has exactly one local rank 0.
  const int is_leader = local_rank_ == 0 ? 1 : 0;
  DPT_MPI_CHECK(MPI_Allreduce(&is_leader, &node_count_, 1, MPI_INT, MPI_SUM, comm_.get()));

  // The deadline (Note [Collective deadline]): the watchdog asks other ranks over a communicator
  // of its own, from its own thread, which MPI allows with MPI_THREAD_MULTIPLE only.
  watchdog_ = std::make_unique<Watchdog>(comm_.get(), recorder_, provided == MPI_THREAD_MULTIPLE);

  // From here on only thread_ calls MPI on comm_ (Note [One MPI thread]). Starting a std::thread
  // synchronises with its first instruction, so the calls above happen-before its calls.
  thread_ = std::thread([this] { thread_main(); });
}

MpiCommunicator::~MpiCommunicator() {
  {
    std::lock_guard lock(queue_mutex_);
    stopping_ = true;
  }
  queue_cv_.notify_one();  // wake the thread if it sleeps on an empty queue; it drains, then exits
  try {
    if (thread_.joinable()) thread_.join();
  } catch (const std::exception& e) {
    log(LogLevel::kWarning, "MpiCommunicator: joining the communication thread failed: ", e.what());
  }
  watchdog_.reset();  // kept until here: draining the queue may hang too
  // comm_ is freed after this body, once no thread uses it.
}

void MpiCommunicator::thread_main() noexcept {
  for (;;) {
    Job job;
    {
      std::unique_lock lock(queue_mutex_);
      queue_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything queued has run
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    {
      std::lock_guard lock(job.state->mutex);
      job.state->start = detail::steady_seconds();
    }
    recorder_.started(job.seq);
    std::exception_ptr error;
    try {
      if (check_collectives_.load(std::memory_order_relaxed)) check_fingerprint(job);
      job.run();
    } catch (...) {
      error = std::current_exception();  // rethrown by Work::wait() on the caller's thread
    }
    recorder_.finished(job.seq, error != nullptr);
    {
      std::lock_guard lock(job.state->mutex);
      job.state->end = detail::steady_seconds();
      job.state->error = error;
      job.state->done = true;
    }
    // Wakes wait() and the Work destructor; the caller may then touch the buffer again.
    job.state->cv.notify_all();
  }
}

std::shared_ptr<MpiCommunicator::WorkState> MpiCommunicator::enqueue(CollectiveKind kind,
                                                                     std::int64_t count,
                                                                     int element_bytes,
                                                                     std::function<void()> run) {
  auto state = std::make_shared<WorkState>();
  Job job;
  job.run = std::move(run);
  job.state = state;
  job.kind = kind;
  job.count = count;
  job.element_bytes = element_bytes;
  job.label = label_;
  job.seq = recorder_.queued(kind, count, element_bytes, label_);
  {
    std::lock_guard lock(queue_mutex_);
    queue_.push_back(std::move(job));
  }
  queue_cv_.notify_one();  // the thread may be asleep on an empty queue
  return state;
}

void MpiCommunicator::run_blocking(CollectiveKind kind, std::int64_t count, int element_bytes,
                                   std::function<void()> run) {
  AsyncWork(enqueue(kind, count, element_bytes, std::move(run))).wait();
}

namespace {
// One rank's view of a collective for --check-collectives: fixed size, so one MPI_Allgather of
// bytes carries it whatever the ranks disagree on.
struct Fingerprint {
  std::int64_t seq = 0;
  std::int64_t kind = 0;
  std::int64_t count = 0;
  std::int64_t element_bytes = 0;
  std::int64_t bucket = -1;
  std::int64_t step = -1;
  char what[48] = {};

  bool same_as(const Fingerprint& o, bool compare_count) const {
    return seq == o.seq && kind == o.kind && (!compare_count || count == o.count) &&
           element_bytes == o.element_bytes && bucket == o.bucket && step == o.step &&
           std::strncmp(what, o.what, sizeof what) == 0;
  }
  std::string text() const {
    CollectiveLabel label{std::string(what, strnlen(what, sizeof what)), bucket, step};
    return ::dpt::detail::str(
        "#", seq, ", ",
        describe(static_cast<CollectiveKind>(kind), count, static_cast<int>(element_bytes), label));
  }
};
}  // namespace

void MpiCommunicator::check_fingerprint(const Job& job) const {
  Fingerprint mine;
  mine.seq = job.seq;
  mine.kind = static_cast<std::int64_t>(job.kind);
  mine.count = job.count;
  mine.element_bytes = job.element_bytes;
  mine.bucket = job.label.bucket;
  mine.step = job.label.step;
  std::strncpy(mine.what, job.label.what.c_str(), sizeof mine.what - 1);
  std::vector<Fingerprint> all(static_cast<std::size_t>(size_));
  DPT_MPI_CHECK(
      MPI_Allgather(&mine, sizeof mine, MPI_BYTE, all.data(), sizeof mine, MPI_BYTE, comm_.get()));
  // An all-gather's contributions may differ in length; every other size must match.
  const bool compare_count = job.kind != CollectiveKind::kAllGather;
  std::string differences;
  for (int r = 1; r < size_; ++r) {
    const Fingerprint& theirs = all[static_cast<std::size_t>(r)];
    if (!theirs.same_as(all[0], compare_count)) {
      differences += ::dpt::detail::str("; rank ", r, " issues ", theirs.text());
    }
  }
  DPT_CHECK_KIND(ErrorKind::kComm, differences.empty(),
                 "collectives differ between ranks (--check-collectives): rank 0 issues ",
                 all[0].text(), differences);
}

void MpiCommunicator::all_reduce_chunked(void* data, std::int64_t count, MPI_Datatype type,
                                         std::size_t element_bytes, MPI_Op op) const {
  auto* bytes = static_cast<char*>(data);
  for (std::int64_t done = 0; done < count;) {
    const int n = static_cast<int>(std::min(count - done, max_chunk_count_));
    DPT_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE,
                                bytes + done * static_cast<std::int64_t>(element_bytes), n, type,
                                op, comm_.get()));
    done += n;
  }
}

void MpiCommunicator::broadcast_chunked(void* data, std::int64_t count_bytes, int root) const {
  auto* bytes = static_cast<char*>(data);
  for (std::int64_t done = 0; done < count_bytes;) {
    const int n = static_cast<int>(std::min(count_bytes - done, max_chunk_count_));
    DPT_MPI_CHECK(MPI_Bcast(bytes + done, n, MPI_BYTE, root, comm_.get()));
    done += n;
  }
}

// Note [Deterministic sums]
// ~~~~~~~~~~~~~~~~~~~~~~~~~
// Sums use MPI_Allreduce. The MPI standard requires every rank of a reduction to receive the same
// result, and Open MPI's coll/tuned picks its algorithm from (communicator size, message size)
// only, so for a fixed world size and count the summation order is fixed and results repeat bit
// for bit from run to run. Open MPI documents no stronger promise (bit-identical results across
// world sizes need an order fixed by the caller, e.g. sums of exactly representable values).
// collectives_test checks that all ranks hold identical bits after a sum of inexact values; should
// a future MPI break that, replace this call by a fixed-order ring, here and nowhere else.
std::unique_ptr<Work> MpiCommunicator::all_reduce_async(float* data, std::int64_t count,
                                                        ReduceOp op) {
  check_buffer("all_reduce", data, count);
  const MPI_Op mpi_op = to_mpi(op);
  // Captures by value: the caller returns at once; only `data` must stay alive (the contract).
  return std::make_unique<AsyncWork>(
      enqueue(CollectiveKind::kAllReduce, count, sizeof(float), [this, data, count, mpi_op] {
        wait_for_peers_asleep();
        all_reduce_chunked(data, count, MPI_FLOAT, sizeof(float), mpi_op);
      }));
}

// Note [bf16 all-reduce]
// ~~~~~~~~~~~~~~~~~~~~~~~
// --grad-reduce bf16 halves the bytes of the gradient all-reduce. MPI has no bfloat16 type, so the
// values travel as MPI_UINT16_T and a user reduction adds them: each pair widened to float (exact),
// added, and rounded back to bf16 to nearest even (runtime/dtype.h), as NCCL's bf16 sum rounds
// each partial sum. Open MPI's algorithm for a given count and world size is fixed, so a run
// repeats its bits; another world size adds in another order, as with floats.
std::unique_ptr<Work> MpiCommunicator::all_reduce_bf16_async(BFloat16* data, std::int64_t count) {
  check_buffer("all_reduce_bf16", data, count);
  const MPI_Op op = bf16_sum_.get();
  return std::make_unique<AsyncWork>(
      enqueue(CollectiveKind::kAllReduce, count, sizeof(BFloat16), [this, data, count, op] {
        wait_for_peers_asleep();
        all_reduce_chunked(data, count, MPI_UINT16_T, sizeof(BFloat16), op);
      }));
}

// Note [Waiting for peers asleep]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Open MPI's blocking collectives poll: a rank that arrives first spins in the shared-memory
// transport until its peers come. The communication thread shares a core with the compute
// threads wherever ranks x (threads + 1) exceed the cores (2 ranks x 1 thread on 2 cores), so a
// gradient bucket started during backward, while a slower peer still computes, took the CPU from
// this rank's own backward: on 2 cores the small gpt's forward and backward ran 10% slower on 2
// ranks than on 1. So an asynchronous all-reduce first waits in MPI_Ibarrier, tested every
// kPeerPoll with the thread asleep in between; the all-reduce then starts with every rank
// present and spins briefly. Cost: one barrier per bucket (microseconds on shared memory) and at
// most kPeerPoll of extra latency, hidden behind backward except for the last bucket. Blocking
// collectives (the host is waiting anyway) keep their one call.
void MpiCommunicator::wait_for_peers_asleep() {
  constexpr auto kPeerPoll = std::chrono::microseconds(50);
  MPI_Request request = MPI_REQUEST_NULL;
  DPT_MPI_CHECK(MPI_Ibarrier(comm_.get(), &request));
  int done = 0;
  DPT_MPI_CHECK(MPI_Test(&request, &done, MPI_STATUS_IGNORE));
  while (done == 0) {
    std::this_thread::sleep_for(kPeerPoll);
    DPT_MPI_CHECK(MPI_Test(&request, &done, MPI_STATUS_IGNORE));
  }
}

void MpiCommunicator::all_reduce(double* data, std::int64_t count, ReduceOp op) {
  check_buffer("all_reduce", data, count);
  const MPI_Op mpi_op = to_mpi(op);
  run_blocking(CollectiveKind::kAllReduce, count, sizeof(double),
               [&] { all_reduce_chunked(data, count, MPI_DOUBLE, sizeof(double), mpi_op); });
}

void MpiCommunicator::all_reduce(std::int64_t* data, std::int64_t count, ReduceOp op) {
  check_buffer("all_reduce", data, count);
  const MPI_Op mpi_op = to_mpi(op);
  run_blocking(CollectiveKind::kAllReduce, count, sizeof(std::int64_t),
               [&] { all_reduce_chunked(data, count, MPI_INT64_T, sizeof(std::int64_t), mpi_op); });
}

std::unique_ptr<Work> MpiCommunicator::exact_sum_async(ExactSumBucket bucket) {
  exact::check_chunks("exact_sum", bucket.count, bucket.chunk_starts, bucket.total_shards,
                      static_cast<std::int64_t>(bucket.shards.size()));
  check_buffer("exact_sum", bucket.out, bucket.count);
  if (!bucket.owned_counts.empty()) {
    const std::vector<std::int64_t> starts = uneven_block_starts("exact_sum", bucket.owned_counts, size_);
    DPT_CHECK(starts.back() == bucket.count, "exact_sum: owned counts add up to ", starts.back(),
              ", not the bucket's ", bucket.count);
  }
  const std::int64_t count = bucket.count;
  return std::make_unique<AsyncWork>(
      enqueue(CollectiveKind::kExactSum, count, sizeof(float),
              [this, bucket = std::move(bucket)] { exact_sum(bucket); }));
}

// Note [Exact gradient sum] in runtime/exact_sum.cpp. Integer sums are associative, so the ring
// may add in any order: the result is the same for every world size.
void MpiCommunicator::exact_sum(const ExactSumBucket& bucket) {
  const auto chunks = static_cast<std::int64_t>(bucket.chunk_starts.size());
  codes_.resize(static_cast<std::size_t>(chunks));
  exact::chunk_codes(bucket.shards, bucket.count, bucket.chunk_starts, codes_.data());
  all_reduce_chunked(codes_.data(), chunks, MPI_INT32_T, sizeof(std::int32_t), MPI_MAX);
  sums_.resize(static_cast<std::size_t>(bucket.count));
  exact::quantize_sum(bucket.shards, bucket.count, bucket.chunk_starts, codes_.data(),
                      bucket.total_shards, 0, bucket.count, sums_.data());
  // Rank r reduces and converts block r: its own range of a sharded optimizer, or an even share
  // whose results everyone then gathers into `out` in place.
  std::vector<std::int64_t> starts(static_cast<std::size_t>(size_) + 1, 0);
  for (int r = 0; r < size_; ++r) {
    const auto i = static_cast<std::size_t>(r);
    starts[i + 1] = bucket.owned_counts.empty() ? bucket.count * (r + 1) / size_
                                                : starts[i] + bucket.owned_counts[i];
  }
  ring_reduce_scatter(sums_.data(), starts, MPI_INT64_T, sizeof(std::int64_t), MPI_SUM);
  const std::int64_t first = starts[static_cast<std::size_t>(rank_)];
  const std::int64_t last = starts[static_cast<std::size_t>(rank_) + 1];
  exact::dequantize_range(sums_.data() + first, bucket.count, bucket.chunk_starts, codes_.data(),
                          bucket.total_shards, first, last, bucket.out + first);
  if (!bucket.owned_counts.empty()) return;
  for_each_window(starts, [&](std::int64_t begin, const std::vector<int>& shares,
                              const std::vector<int>& offsets, std::int64_t) {
    DPT_MPI_CHECK(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, bucket.out + begin,
                                 shares.data(), offsets.data(), MPI_FLOAT, comm_.get()));
  });
}

void MpiCommunicator::broadcast(void* data, std::int64_t count_bytes, int root) {
  check_buffer("broadcast", data, count_bytes);
  DPT_CHECK(root >= 0 && root < size_, "broadcast: root ", root, " is not a rank of a world of ",
            size_);
  run_blocking(CollectiveKind::kBroadcast, count_bytes, 1,
               [&] { broadcast_chunked(data, count_bytes, root); });
}

std::vector<std::string> MpiCommunicator::all_gather(const std::string& local) {
  std::vector<std::string> result(static_cast<std::size_t>(size_));
  run_blocking(CollectiveKind::kAllGather, static_cast<std::int64_t>(local.size()), 1, [&] {
    // Lengths first, so that every rank can size its receive buffer.
    const auto length = static_cast<std::int64_t>(local.size());
    std::vector<std::int64_t> lengths(static_cast<std::size_t>(size_));
    DPT_MPI_CHECK(
        MPI_Allgather(&length, 1, MPI_INT64_T, lengths.data(), 1, MPI_INT64_T, comm_.get()));
    std::int64_t total = 0;
    for (const std::int64_t n : lengths) total += n;
    if (total > max_chunk_count_) {
      // Allgatherv's displacements are ints: above INT_MAX bytes in all, each rank's string is
      // broadcast in turn, in chunks.
      for (int r = 0; r < size_; ++r) {
        std::string& out = result[static_cast<std::size_t>(r)];
        out.resize(static_cast<std::size_t>(lengths[static_cast<std::size_t>(r)]));
        if (r == rank_) out = local;
        broadcast_chunked(out.data(), static_cast<std::int64_t>(out.size()), r);
      }
      return;
    }
    std::vector<int> counts(static_cast<std::size_t>(size_)), displacements(counts.size());
    int offset = 0;
    for (std::size_t r = 0; r < counts.size(); ++r) {
      counts[r] = static_cast<int>(lengths[r]);
      displacements[r] = offset;
      offset += counts[r];
    }
    std::string gathered(static_cast<std::size_t>(total), '\0');
    DPT_MPI_CHECK(MPI_Allgatherv(local.data(), static_cast<int>(length), MPI_BYTE, gathered.data(),
                                 counts.data(), displacements.data(), MPI_BYTE, comm_.get()));
    for (std::size_t r = 0; r < counts.size(); ++r) {
      result[r] = gathered.substr(static_cast<std::size_t>(displacements[r]),
                                  static_cast<std::size_t>(counts[r]));
    }
  });
  return result;
}

void MpiCommunicator::reduce_scatter(float* data, std::int64_t block_count, ReduceOp op) {
  check_buffer("reduce_scatter", data, block_count);
  DPT_CHECK(block_count <= INT64_MAX / size_, "reduce_scatter: ", size_, " blocks of ", block_count,
            " floats overflow a 64-bit count");
  const MPI_Op mpi_op = to_mpi(op);
  run_blocking(CollectiveKind::kReduceScatter, block_count * size_, sizeof(float), [&] {
    if (block_count == 0) return;
    if (block_count <= max_chunk_count_) {
      // In place, MPI takes the inputs from the receive buffer and writes this rank's result at
      // its start (MPI-3.1 section 5.10.1); the contract wants it in block rank().
      DPT_MPI_CHECK(MPI_Reduce_scatter_block(MPI_IN_PLACE, data, static_cast<int>(block_count),
                                             MPI_FLOAT, mpi_op, comm_.get()));
      if (rank_ != 0) {
        std::memcpy(data + rank_ * block_count, data,
                    static_cast<std::size_t>(block_count) * sizeof(float));
      }
      return;
    }
    // Blocks above the chunk limit: reduce block r onto rank r, chunk by chunk.
    for (int r = 0; r < size_; ++r) {
      float* block = data + r * block_count;
      for (std::int64_t done = 0; done < block_count;) {
        const int n = static_cast<int>(std::min(block_count - done, max_chunk_count_));
        DPT_MPI_CHECK(MPI_Reduce(r == rank_ ? MPI_IN_PLACE : block + done, block + done, n,
                                 MPI_FLOAT, mpi_op, r, comm_.get()));
        done += n;
      }
    }
  });
}

// Note [Uneven blocks]
// ~~~~~~~~~~~~~~~~~~~~
// A sharded optimizer's buckets cut the shards unevenly (a bucket may lie in one rank's shard, or
// straddle two), so its collectives take one count per rank: MPI's v-variants (Reduce_scatter,
// Allgatherv, Gatherv, Scatterv), whose counts and displacements are ints. Long buffers go in
// windows of at most max_chunk_count_ elements, each rank's share of a window being the part of
// its block inside it; every rank computes the same windows, so the calls match.
void MpiCommunicator::for_each_window(
    const std::vector<std::int64_t>& starts,
    const std::function<void(std::int64_t, const std::vector<int>&, const std::vector<int>&,
                             std::int64_t)>& piece) const {
  std::vector<int> counts(static_cast<std::size_t>(size_)), displacements(counts.size());
  const std::int64_t total = starts.back();
  for (std::int64_t begin = 0; begin < total;) {
    const std::int64_t end = std::min(total, begin + max_chunk_count_);
    for (std::size_t r = 0; r < counts.size(); ++r) {
      const std::int64_t from = std::clamp(starts[r], begin, end);
      const std::int64_t to = std::clamp(starts[r + 1], begin, end);
      counts[r] = static_cast<int>(to - from);
      displacements[r] = static_cast<int>(from - begin);
    }
    const auto me = static_cast<std::size_t>(rank_);
    // Where this rank's share starts in its block; 0 when the window holds none of it.
    piece(begin, counts, displacements,
          counts[me] > 0 ? begin + displacements[me] - starts[me] : 0);
    begin = end;
  }
}

// Note [Ring reduce-scatter]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~
// Open MPI's MPI_Reduce_scatter with uneven counts reduces the whole buffer onto one rank and
// scatters it (coll/tuned's choice for small worlds): on 2 ranks and 16 MB it took as long as an
// all-reduce (3.5-5.5 ms against 3.1-4.8 here), so a sharded step would move more than the
// all-reduce it replaces. So the reduce-scatter of a sharded optimizer is a ring of its own: in
// step s = 0 .. N-2 rank r sends its partial block (r - s - 1) mod N to rank r + 1, receives block
// (r - s - 2) mod N from rank r - 1 and reduces it into its copy (MPI_Reduce_local); after N - 1
// steps block r is complete on rank r. Each rank sends and receives (N - 1) / N of the buffer,
// half of it on 2 ranks, and the order of the additions is fixed by N alone (one addition, which
// commutes, on 2 ranks: the same bits as an all-reduce). Messages go in pieces of at most
// max_chunk_count_ elements (non-blocking, so that both directions of a step proceed at once).
void MpiCommunicator::ring_reduce_scatter(void* data, const std::vector<std::int64_t>& starts,
                                          MPI_Datatype type, std::size_t element_bytes,
                                          MPI_Op op) {
  const int n = size_;
  if (n == 1) return;
  const int next = (rank_ + 1) % n, previous = (rank_ + n - 1) % n;
  auto* bytes = static_cast<char*>(data);
  const auto at = [&](int block, std::int64_t element) {
    return bytes + (starts[static_cast<std::size_t>(block)] + element) *
                       static_cast<std::int64_t>(element_bytes);
  };
  std::int64_t largest = 0;
  for (int b = 0; b < n; ++b) largest = std::max(largest, starts[b + 1] - starts[b]);
  scratch_.resize(static_cast<std::size_t>(largest) * element_bytes);
  std::vector<MPI_Request> requests;
  for (int step = 0; step + 1 < n; ++step) {
    const int send_block = ((rank_ - step - 1) % n + n) % n;
    const int receive_block = ((rank_ - step - 2) % n + n) % n;
    const std::int64_t send_count = starts[send_block + 1] - starts[send_block];
    const std::int64_t receive_count = starts[receive_block + 1] - starts[receive_block];
    requests.clear();
    for (std::int64_t done = 0; done < receive_count; done += max_chunk_count_) {
      const int piece = static_cast<int>(std::min(receive_count - done, max_chunk_count_));
      requests.emplace_back();
      DPT_MPI_CHECK(MPI_Irecv(scratch_.data() + done * static_cast<std::int64_t>(element_bytes),
                              piece, type, previous, step, comm_.get(), &requests.back()));
    }
    for (std::int64_t done = 0; done < send_count; done += max_chunk_count_) {
      const int piece = static_cast<int>(std::min(send_count - done, max_chunk_count_));
      requests.emplace_back();
      DPT_MPI_CHECK(MPI_Isend(at(send_block, done), piece, type, next, step, comm_.get(),
                              &requests.back()));
    }
    DPT_MPI_CHECK(MPI_Waitall(static_cast<int>(requests.size()), requests.data(),
                              MPI_STATUSES_IGNORE));
    for (std::int64_t done = 0; done < receive_count; done += max_chunk_count_) {
      const int piece = static_cast<int>(std::min(receive_count - done, max_chunk_count_));
      DPT_MPI_CHECK(MPI_Reduce_local(scratch_.data() + done * static_cast<std::int64_t>(element_bytes),
                                     at(receive_block, done), piece, type, op));
    }
  }
}

std::unique_ptr<Work> MpiCommunicator::reduce_scatter_async(float* data,
                                                            std::vector<std::int64_t> counts,
                                                            ReduceOp op) {
  std::vector<std::int64_t> starts = uneven_block_starts("reduce_scatter_async", counts, size_);
  check_buffer("reduce_scatter_async", data, starts.back());
  const MPI_Op mpi_op = to_mpi(op);
  const std::int64_t total = starts.back();
  return std::make_unique<AsyncWork>(enqueue(CollectiveKind::kReduceScatter, total, sizeof(float),
                                             [this, data, mpi_op, starts = std::move(starts)] {
                                               wait_for_peers_asleep();
                                               ring_reduce_scatter(data, starts, MPI_FLOAT,
                                                                   sizeof(float), mpi_op);
                                             }));
}

std::unique_ptr<Work> MpiCommunicator::all_gather_async(float* data,
                                                        std::vector<std::int64_t> counts) {
  std::vector<std::int64_t> starts = uneven_block_starts("all_gather_async", counts, size_);
  check_buffer("all_gather_async", data, starts.back());
  const std::int64_t total = starts.back();
  return std::make_unique<AsyncWork>(
      enqueue(CollectiveKind::kAllGather, total, sizeof(float),
              [this, data, starts = std::move(starts)] {
                wait_for_peers_asleep();
                for_each_window(starts, [&](std::int64_t begin, const std::vector<int>& shares,
                                            const std::vector<int>& offsets, std::int64_t) {
                  DPT_MPI_CHECK(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data + begin,
                                               shares.data(), offsets.data(), MPI_FLOAT,
                                               comm_.get()));
                });
              }));
}

void MpiCommunicator::gather(const float* local, float* all,
                             const std::vector<std::int64_t>& counts, int root) {
  DPT_CHECK(root >= 0 && root < size_, "gather: root ", root, " is not a rank of a world of ",
            size_);
  const std::vector<std::int64_t> starts = uneven_block_starts("gather", counts, size_);
  check_buffer("gather", local, counts[static_cast<std::size_t>(rank_)]);
  if (rank_ == root) check_buffer("gather", all, starts.back());
  run_blocking(CollectiveKind::kGather, starts.back(), sizeof(float), [&] {
    for_each_window(starts, [&](std::int64_t begin, const std::vector<int>& shares,
                                const std::vector<int>& offsets, std::int64_t mine) {
      DPT_MPI_CHECK(MPI_Gatherv(local + mine, shares[static_cast<std::size_t>(rank_)], MPI_FLOAT,
                                rank_ == root ? all + begin : nullptr, shares.data(),
                                offsets.data(), MPI_FLOAT, root, comm_.get()));
    });
  });
}

void MpiCommunicator::scatter(const float* all, float* local,
                              const std::vector<std::int64_t>& counts, int root) {
  DPT_CHECK(root >= 0 && root < size_, "scatter: root ", root, " is not a rank of a world of ",
            size_);
  const std::vector<std::int64_t> starts = uneven_block_starts("scatter", counts, size_);
  check_buffer("scatter", local, counts[static_cast<std::size_t>(rank_)]);
  if (rank_ == root) check_buffer("scatter", all, starts.back());
  run_blocking(CollectiveKind::kScatter, starts.back(), sizeof(float), [&] {
    for_each_window(starts, [&](std::int64_t begin, const std::vector<int>& shares,
                                const std::vector<int>& offsets, std::int64_t mine) {
      DPT_MPI_CHECK(MPI_Scatterv(rank_ == root ? all + begin : nullptr, shares.data(),
                                 offsets.data(), MPI_FLOAT, local + mine,
                                 shares[static_cast<std::size_t>(rank_)], MPI_FLOAT, root,
                                 comm_.get()));
    });
  });
}

double MpiCommunicator::native_all_reduce_seconds(float* data, std::int64_t count) {
  check_buffer("native_all_reduce", data, count);
  double seconds = 0.0;
  run_blocking(CollectiveKind::kAllReduce, count, sizeof(float), [&] {
    const double start = detail::steady_seconds();
    all_reduce_chunked(data, count, MPI_FLOAT, sizeof(float), MPI_SUM);
    seconds = detail::steady_seconds() - start;
  });
  return seconds;
}

void MpiCommunicator::barrier() {
  run_blocking(CollectiveKind::kBarrier, 0, 0, [&] { DPT_MPI_CHECK(MPI_Barrier(comm_.get())); });
}

std::unique_ptr<Communicator> make_communicator() { return std::make_unique<MpiCommunicator>(); }

}  // namespace dpt::comm::mpi
