// SPDX-License-Identifier: MIT
// The writer thread of asynchronous checkpoints: one thread per write, joined before the next.
#include "nn/train/checkpoint_writer.h"

#include <atomic>
#include <exception>
#include <filesystem>
#include <system_error>
#include <utility>

#include "nn/train/checkpoint.h"
#include "runtime/check.h"
#include "runtime/logging.h"
#include "runtime/timer.h"

namespace dpt::nn {

namespace test_hooks {
namespace {
std::atomic<CheckpointWriteHook> g_write_hook{nullptr};
}  // namespace
void set_checkpoint_write_hook(CheckpointWriteHook hook) noexcept { g_write_hook.store(hook); }
}  // namespace test_hooks

CheckpointWriter::CheckpointWriter(io::CheckpointDir dir, int keep_last)
    : dir_(std::move(dir)), keep_last_(keep_last) {}

CheckpointWriter::~CheckpointWriter() {
  join();
  try {
    const std::lock_guard lock(mutex_);
    if (failed_ && !reported_) log(LogLevel::kWarning, failure_);
  } catch (...) {  // logging failed too: nothing more to say
  }
}

void CheckpointWriter::join() noexcept {
  // join() throws only for a thread that is not joinable (checked) or is the calling one (the
  // writer thread never owns its writer); were it ever to, noexcept ends the process rather than
  // leave a thread running on a writer that is going away.
  if (thread_.joinable()) thread_.join();
}

std::string CheckpointWriter::submit(io::CheckpointState snapshot, SnapshotFence copied) {
  wait();  // at most one write in flight; throws the previous write's failure
  const std::string path =
      (std::filesystem::path(dir_.path()) / io::checkpoint_file_name(snapshot.step)).string();
  {
    const std::lock_guard lock(mutex_);
    busy_ = true;
  }
  try {
    thread_ = std::thread([this, s = std::move(snapshot), f = std::move(copied)]() mutable {
      write(std::move(s), f);
    });
  } catch (const std::system_error& e) {
    const std::lock_guard lock(mutex_);
    busy_ = false;
    DPT_FAIL_KIND(ErrorKind::kIo, "cannot start the checkpoint writer thread for ", path, ": ",
                  e.what());
  }
  return path;
}

void CheckpointWriter::write(io::CheckpointState snapshot, const SnapshotFence& copied) noexcept {
  const std::string path =
      (std::filesystem::path(dir_.path()) / io::checkpoint_file_name(snapshot.step)).string();
  const std::int64_t step = snapshot.step;
  Stopwatch watch;
  std::string error;
  ErrorKind kind = ErrorKind::kIo;
  std::string written;
  try {
    if (auto hook = test_hooks::g_write_hook.load()) {
      hook(snapshot.step, test_hooks::WritePhase::kStarting);
    }
    copied.wait_on_host();              // a GPU's device-to-host copies
    check_checkpoint_finite(snapshot);  // off the training loop's critical path
    written = dir_.save(snapshot, keep_last_);
  } catch (const Error& e) {
    error = e.message();
    kind = e.kind();
  } catch (const std::exception& e) {  // e.g. std::bad_alloc while building the file
    error = e.what();
    kind = ErrorKind::kInternal;
  }
  // The snapshot's memory goes back before the write counts as finished, so that the next
  // snapshot reuses it (the host allocator caches blocks by size).
  snapshot = io::CheckpointState{};
  const double seconds = watch.elapsed_s();
  try {
    // Debug level: from this thread an info line would cut into the progress line on a terminal.
    if (error.empty()) {
      log(LogLevel::kDebug, "checkpoint ", written, " written in the background in ",
          static_cast<long long>(seconds * 1e3), " ms");
    }
  } catch (...) {  // a log line is not worth a failed checkpoint
  }
  {
    const std::lock_guard lock(mutex_);
    if (error.empty()) {
      ++stats_.written;
      stats_.write_seconds += seconds;
      stats_.last_write_seconds = seconds;
      stats_.last_path = written;
    } else {
      failed_ = true;
      failure_kind_ = kind;
      failure_ = "background write of checkpoint " + path + " failed: " + error;
    }
    busy_ = false;
  }
  if (auto hook = test_hooks::g_write_hook.load()) {
    try {
      hook(step, test_hooks::WritePhase::kFinished);
    } catch (...) {  // a test's hook; the outcome is recorded already
    }
  }
}

void CheckpointWriter::poll() const {
  const std::lock_guard lock(mutex_);
  if (!failed_) return;
  reported_ = true;
  DPT_FAIL_KIND(failure_kind_, failure_);
}

bool CheckpointWriter::failed() const {
  const std::lock_guard lock(mutex_);
  return failed_;
}

std::string CheckpointWriter::failure() const {
  const std::lock_guard lock(mutex_);
  return failure_;
}

void CheckpointWriter::wait() {
  join();
  poll();
}

bool CheckpointWriter::in_flight() const {
  const std::lock_guard lock(mutex_);
  return busy_;
}

CheckpointWriter::Stats CheckpointWriter::stats() const {
  const std::lock_guard lock(mutex_);
  return stats_;
}

}  // namespace dpt::nn
