// SPDX-License-Identifier: MIT
// Asynchronous checkpoints (--async-checkpoint): rank 0 hands a snapshot (the host copies
// take_checkpoint_snapshot makes) to a writer thread, which writes it by the directory's protocol
// (io::CheckpointDir::save: .tmp, fsync, rename, `latest`, pruning) while training goes on.
// At most one write is in flight; a failed write is kept and thrown by the next call that looks.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "runtime/error.h"
#include "runtime/host_snapshot.h"
#include "runtime/io/checkpoint_dir.h"
#include "runtime/io/checkpoint_file.h"

namespace dpt::nn {

class CheckpointWriter {
 public:
  // Writes into `dir` (already prepared), keeping `keep_last` checkpoints (<= 0: all).
  CheckpointWriter(io::CheckpointDir dir, int keep_last);
  // Waits for the write in flight (a thread is never left running or detached). Never throws: a
  // failure never thrown (the run ended otherwise first) is logged as a warning.
  ~CheckpointWriter();
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  // Waits for the write in flight, throws its error if it failed (as poll()), then starts writing
  // `snapshot` (which the writer owns from here on) on a thread of its own and returns the path
  // the checkpoint will have. The thread reads the snapshot after copied.wait_on_host() (a GPU's
  // copies may still be in flight: runtime/host_snapshot.h); a failed wait is a failed write.
  std::string submit(io::CheckpointState snapshot, SnapshotFence copied = {});

  // Never waits: throws the IoError of a finished write that failed (every call after it, too: a
  // failed writer takes no further writes), naming the checkpoint and the reason.
  void poll() const;
  // As poll(), as a flag: true once a finished write has failed.
  bool failed() const;
  // The failure's text (empty while none), for the ranks that did not write.
  std::string failure() const;
  // Blocks until no write is in flight, then poll().
  void wait();
  // True from submit() until that write has finished (successfully or not).
  bool in_flight() const;

  struct Stats {
    std::int64_t written = 0;    // writes that finished successfully
    double write_seconds = 0.0;  // their time on the writer thread, in all
    double last_write_seconds = 0.0;
    std::string last_path;  // the last checkpoint written ("" when none)
  };
  Stats stats() const;

 private:
  // The writer thread's body: never throws; the outcome goes into the members below.
  void write(io::CheckpointState snapshot, const SnapshotFence& copied) noexcept;
  void join() noexcept;

  const io::CheckpointDir dir_;
  const int keep_last_;
  std::thread thread_;        // the write in flight, or the last one (joined before the next)
  mutable std::mutex mutex_;  // guards everything below (the writer thread sets it)
  bool busy_ = false;
  bool failed_ = false;
  mutable bool reported_ = false;  // poll() has thrown the failure (the destructor need not log it)
  ErrorKind failure_kind_ = ErrorKind::kIo;
  std::string failure_;
  Stats stats_;
};

namespace test_hooks {

// Called on the writer thread with the checkpoint's step before each write (kStarting) and once
// its outcome is recorded (kFinished), so that a test can hold a write in flight, act while it
// runs or wait for its end. Process-wide; nullptr (the default): no hook.
enum class WritePhase { kStarting, kFinished };
using CheckpointWriteHook = void (*)(std::int64_t step, WritePhase phase);
void set_checkpoint_write_hook(CheckpointWriteHook hook) noexcept;

}  // namespace test_hooks
}  // namespace dpt::nn
