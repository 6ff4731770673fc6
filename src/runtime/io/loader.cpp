// SPDX-License-Identifier: MIT
// Epoch permutations and the prefetching, sharding loader (ordering contract in loader.h).
#include "runtime/io/loader.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <limits>
#include <numeric>

#include "runtime/check.h"
#include "runtime/io/loader_testing.h"
#include "runtime/philox.h"
#include "runtime/timer.h"

namespace dpt::io {

namespace test_hooks {
namespace {
// A plain function pointer: no resource, safe in static storage; atomic since the producer reads it.
std::atomic<LoaderFaultHook> g_fault_hook{nullptr};
}  // namespace
void set_loader_fault_hook(LoaderFaultHook hook) noexcept { g_fault_hook.store(hook); }
}  // namespace test_hooks

namespace {

// Note [Epoch permutation]
// ~~~~~~~~~~~~~~~~~~~~~~~~
// Fisher-Yates from the back: for i = n-1 down to 1, swap element i with element j, j uniform in
// [0, i]. The random words are the elements 0, 1, 2, ... of PhiloxStream{seed, kDataOrder,
// a = epoch low 32 bits, b = epoch high 32 bits}, consumed in order. j comes from Lemire's
// multiply-shift with rejection ("Fast random integer generation in an interval", 2019): with
// x a 32-bit word and r = i + 1, m = x * r (64-bit); reject while (m mod 2^32) < (2^32 - r) mod r;
// j = m >> 32. This is exactly uniform, and needs one word per swap except on rare rejections.
// The permutation is therefore a pure function of (seed, epoch, n), identical on every rank.
class WordStream {
 public:
  explicit WordStream(const PhiloxStream& stream) : stream_(stream) {}
  std::uint32_t next() {
    DPT_CHECK(index_ < std::numeric_limits<std::uint32_t>::max(),
              "loader: Philox stream exhausted");
    return stream_.bits(index_++);
  }
  // Uniform in [0, range), range >= 1, by Lemire's multiply-shift with rejection. U is
  // std::uint32_t (one word a draw, the product in Wide = 64 bits: the permutation) or
  // std::uint64_t (two words, high first, the product in 128 bits: Note [Window start]).
  template <typename U, typename Wide>
  U bounded(U range) {
    const auto draw = [&] { return static_cast<Wide>(word<U>()) * range; };
    Wide m = draw();
    auto low = static_cast<U>(m);
    if (low < range) {
      const U threshold = static_cast<U>(U{0} - range) % range;
      while (low < threshold) {
        m = draw();
        low = static_cast<U>(m);
      }
    }
    return static_cast<U>(m >> (8 * sizeof(U)));
  }

 private:
  template <typename U>
  U word() {
    if constexpr (sizeof(U) == sizeof(std::uint32_t)) {
      return next();
    } else {
      const std::uint64_t high = next();
      return (high << 32) | next();
    }
  }

  PhiloxStream stream_;
  std::uint32_t index_ = 0;
};

// GCC and Clang's 128-bit integer (__extension__: not ISO C++, -Wpedantic would reject it).
__extension__ using Uint128 = unsigned __int128;

}  // namespace

std::vector<std::int64_t> epoch_permutation(std::int64_t n, std::uint64_t seed,
                                            std::int64_t epoch) {
  DPT_CHECK(n >= 0 && n < (std::int64_t{1} << 31), "epoch_permutation: n = ", n,
            " must be in [0, 2^31)");
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), std::int64_t{0});
  const auto e = static_cast<std::uint64_t>(epoch);
  WordStream words(PhiloxStream{seed, RngPurpose::kDataOrder, static_cast<std::uint32_t>(e),
                                static_cast<std::uint32_t>(e >> 32)});
  for (std::int64_t i = n - 1; i > 0; --i) {
    const std::uint32_t j =
        words.bounded<std::uint32_t, std::uint64_t>(static_cast<std::uint32_t>(i + 1));
    std::swap(order[static_cast<std::size_t>(i)], order[j]);
  }
  return order;
}

// Note [Window start]
// ~~~~~~~~~~~~~~~~~~~
// The window at position q of epoch e starts at j uniform in [0, R), R = n_tokens - T. The words
// are PhiloxStream{seed, kWindow, a = e, b = q} elements 0, 1, 2, ..., taken in pairs as
// x = (w0 << 32) | w1; j comes from Lemire's multiply-shift on 64 bits with rejection (as in
// Note [Epoch permutation], one pair per draw except with probability < R / 2^64). So windows
// are a pure function of (seed, e, q): no state carried from one window to the next.
std::int64_t window_start(std::uint64_t seed, std::int64_t epoch, std::int64_t position,
                          std::int64_t n_tokens, std::int64_t block_size) {
  DPT_CHECK(block_size > 0 && n_tokens > block_size, "window_start: ", n_tokens,
            " tokens hold no window of ", block_size);
  DPT_CHECK(epoch >= 0 && epoch <= std::numeric_limits<std::uint32_t>::max() && position >= 0 &&
                position <= std::numeric_limits<std::uint32_t>::max(),
            "window_start: epoch ", epoch, " and position ", position, " must be in [0, 2^32)");
  WordStream words(PhiloxStream{seed, RngPurpose::kWindow, static_cast<std::uint32_t>(epoch),
                                static_cast<std::uint32_t>(position)});
  return static_cast<std::int64_t>(
      words.bounded<std::uint64_t, Uint128>(static_cast<std::uint64_t>(n_tokens - block_size)));
}

Loader::Loader(const DatasetSplit& data, LoaderOptions options)
    : data_(data), options_(options) {
  const LoaderOptions& o = options_;
  const std::int64_t n = data_.size();
  DPT_CHECK(o.world_size >= 1 && o.rank >= 0 && o.rank < o.world_size, "loader: rank ", o.rank,
            " of world size ", o.world_size);
  DPT_CHECK(o.global_batch >= o.world_size, "loader: global batch ", o.global_batch,
            " must be at least the world size ", o.world_size, " (every rank needs samples)");
  DPT_CHECK(o.prefetch_depth >= 1, "loader: prefetch_depth must be >= 1, got ", o.prefetch_depth);
  DPT_CHECK(o.epochs >= 0 && o.first_epoch >= 0, "loader: epochs ", o.epochs, " / first_epoch ",
            o.first_epoch, " must be >= 0");
  DPT_CHECK(n > 0, "loader: ", data_.identity(), " is empty");
  DPT_CHECK(!(o.augment_flip && data_.kind() == DatasetKind::kTokens), "loader: ",
            data_.identity(), " is a text dataset: augment_flip (a horizontal image flip) does not "
            "apply to it");
  steps_per_epoch_ = o.drop_last ? n / o.global_batch : (n + o.global_batch - 1) / o.global_batch;
  DPT_CHECK(steps_per_epoch_ > 0, "loader: ", data_.identity(), " has fewer samples than one global batch of ",
            o.global_batch, " and drop_last is set: no step to run");
  // == steps_per_epoch_ is a resume point at the very end of an epoch: serve from the next one.
  DPT_CHECK(o.first_step_in_epoch >= 0 && o.first_step_in_epoch <= steps_per_epoch_,
            "loader: first_step_in_epoch ", o.first_step_in_epoch, " outside [0, ",
            steps_per_epoch_, "]");
  // Started last: every member the thread reads is initialised by now.
  thread_ = std::thread([this] { produce(); });
}

Loader::~Loader() {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();  // wakes the producer if it waits for room in the queue
  if (thread_.joinable()) thread_.join();
}

Batch Loader::make_batch(const std::vector<std::int64_t>& order, std::int64_t epoch,
                         std::int64_t step) {
  const std::int64_t n = data_.size();
  const std::int64_t begin = step * options_.global_batch;
  const std::int64_t global = std::min(options_.global_batch, n - begin);  // < B only when eval
  const std::int64_t first = begin + global * options_.rank / options_.world_size;
  const std::int64_t last = begin + global * (options_.rank + 1) / options_.world_size;
  const std::int64_t b = last - first;

  Batch batch;
  batch.epoch = epoch;
  batch.step_in_epoch = step;
  batch.first_position = first;
  if (data_.kind() == DatasetKind::kTokens) {
    fill_windows(&batch, epoch, first, b);
    return batch;
  }

  // One multiply-add per pixel through a table; computed in float exactly as documented.
  std::array<float, 256> table{};
  const float mean = data_.meta().mean, std_dev = data_.meta().std;
  for (int p = 0; p < 256; ++p) table[static_cast<std::size_t>(p)] = (static_cast<float>(p) / 255.0f - mean) / std_dev;

  batch.inputs = Tensor::empty({b, data_.channels(), data_.height(), data_.width()}, DType::kF32);
  batch.labels = Tensor::empty({b}, DType::kI32);
  const std::int64_t sample_numel = data_.sample_numel();
  float* images = b > 0 ? batch.inputs.data<float>() : nullptr;
  std::int32_t* labels = b > 0 ? batch.labels.data<std::int32_t>() : nullptr;
  const PhiloxStream flips{options_.seed, RngPurpose::kAugment, static_cast<std::uint32_t>(epoch),
                           static_cast<std::uint32_t>(static_cast<std::uint64_t>(epoch) >> 32)};
  const std::int64_t width = data_.width();
  for (std::int64_t k = 0; k < b; ++k) {
    const std::int64_t sample = order[static_cast<std::size_t>(first + k)];
    const std::uint8_t* pixels = data_.image(sample);
    float* dst = images + k * sample_numel;
    const bool flip =
        options_.augment_flip && (flips.bits(static_cast<std::uint32_t>(first + k)) & 1u) != 0;
    if (flip) {
      for (std::int64_t row = 0; row < sample_numel; row += width) {
        for (std::int64_t x = 0; x < width; ++x) dst[row + x] = table[pixels[row + width - 1 - x]];
      }
    } else {
      for (std::int64_t i = 0; i < sample_numel; ++i) dst[i] = table[pixels[i]];
    }
    labels[k] = data_.label(sample);
  }
  return batch;
}

void Loader::fill_windows(Batch* batch, std::int64_t epoch, std::int64_t first,
                          std::int64_t b) const {
  const std::int64_t t = data_.block_size();
  batch->inputs = Tensor::empty({b, t}, DType::kI32);
  batch->labels = Tensor::empty({b * t}, DType::kI32);
  if (b == 0) return;
  std::int32_t* inputs = batch->inputs.data<std::int32_t>();
  std::int32_t* labels = batch->labels.data<std::int32_t>();
  const std::uint16_t* tokens = data_.tokens().data();
  for (std::int64_t k = 0; k < b; ++k) {
    const std::int64_t q = first + k;
    const std::int64_t start = options_.shuffle
                                   ? window_start(options_.seed, epoch, q, data_.num_tokens(), t)
                                   : q * t;
    for (std::int64_t i = 0; i < t; ++i) {
      inputs[k * t + i] = tokens[start + i];
      labels[k * t + i] = tokens[start + i + 1];
    }
  }
}

void Loader::produce() {
  try {
    std::vector<std::int64_t> order;
    for (std::int64_t e = 0; e < options_.epochs; ++e) {
      const std::int64_t epoch = options_.first_epoch + e;
      if (data_.kind() == DatasetKind::kTokens) {
        // Windows are located by position (fill_windows): no order to build.
      } else if (options_.shuffle) {
        order = epoch_permutation(data_.size(), options_.seed, epoch);
      } else if (order.empty()) {
        order.resize(static_cast<std::size_t>(data_.size()));
        std::iota(order.begin(), order.end(), std::int64_t{0});
      }
      const std::int64_t first_step = e == 0 ? options_.first_step_in_epoch : 0;
      for (std::int64_t step = first_step; step < steps_per_epoch_; ++step) {
        {
          const std::lock_guard<std::mutex> lock(mutex_);
          if (stop_) return;
        }
        if (const auto hook = test_hooks::g_fault_hook.load()) hook(epoch, step);
        Batch batch = make_batch(order, epoch, step);  // outside the lock: the consumer runs on
        std::unique_lock<std::mutex> lock(mutex_);
        // Bounded queue: wait for room so memory stays at prefetch_depth batches.
        cv_.wait(lock, [&] {
          return stop_ || ready_.size() < static_cast<std::size_t>(options_.prefetch_depth);
        });
        if (stop_) return;
        ready_.push_back(std::move(batch));
        lock.unlock();
        cv_.notify_all();  // a consumer may be waiting in next()
      }
    }
  } catch (...) {
    const std::lock_guard<std::mutex> lock(mutex_);
    error_ = std::current_exception();
  }
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    finished_ = true;
  }
  cv_.notify_all();
}

std::optional<Batch> Loader::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (ready_.empty() && !finished_) {
    const Stopwatch waited;
    cv_.wait(lock, [&] { return !ready_.empty() || finished_; });
    wait_ms_ += waited.elapsed_ms();
  }
  if (!ready_.empty()) {
    Batch batch = std::move(ready_.front());
    ready_.pop_front();
    lock.unlock();
    cv_.notify_all();  // the producer may be waiting for room
    return batch;
  }
  // Batches made before a failure are served first; then the failure, every time it is asked.
  if (error_) std::rethrow_exception(error_);
  return std::nullopt;
}

}  // namespace dpt::io
