// SPDX-License-Identifier: MIT
// A checkpoint directory and its crash-safe write protocol (docs/formats.md):
//   1. write <dir>/step-<n>.h5.tmp, close it, fsync it;
//   2. rename it to step-<n>.h5, fsync the directory;
//   3. write latest.tmp ("step-<n>.h5\n"), fsync, rename it to `latest`, fsync the directory;
//   4. only then remove checkpoints beyond keep_last (files named step-<n>.h5 that open as dptrain
//      checkpoints, never the one `latest` names).
// A crash at any point leaves `latest` naming a complete checkpoint (or absent, before the
// first), and at worst a stale .tmp that the next run removes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runtime/io/checkpoint_file.h"

namespace dpt::io {

// "step-<n>.h5"
std::string checkpoint_file_name(std::int64_t step);

struct CheckpointRef {
  std::int64_t step = 0;
  std::string path;
};

// A checkpoint that read back completely, and what was passed over to find it.
struct FoundCheckpoint {
  std::string path;
  CheckpointState state;
  std::vector<std::string> skipped;  // one line per damaged newer checkpoint: path and reason
};

class CheckpointDir {
 public:
  explicit CheckpointDir(std::string dir);
  const std::string& path() const { return dir_; }

  // Creates the directory (and its parents) when missing, proves that a file can be created,
  // written, fsynced and removed in it, and removes stale temporaries of an interrupted write.
  // IoError naming the directory and the reason, so a bad --checkpoint-dir fails before step 1;
  // also for a `latest` or step-<n>.h5 that is a symbolic link leading outside the directory.
  void prepare() const;

  // Writes `state` as step-<state.step>.h5 by the protocol above and returns its path. On any
  // failure (disk full included) the .tmp is removed, the previous checkpoints and `latest` are as
  // they were, and an IoError names the path. keep_last <= 0 keeps every checkpoint.
  std::string save(const CheckpointState& state, int keep_last) const;

  // The checkpoint `latest` names (a full path), or nullopt when there is no `latest`. An IoError
  // when it holds anything but a plain "step-<n>.h5" (no directories, no "..", no absolute path),
  // and, without reading it, when `latest` is a symbolic link leading outside the directory (the
  // error shows what `latest` holds only for a file inside the directory).
  std::optional<CheckpointRef> latest() const;

  // The files named step-<n>.h5, newest first (by n). An IoError naming the link and its target
  // for one that is a symbolic link leading outside the directory (links inside are followed).
  std::vector<CheckpointRef> list() const;

  // The newest checkpoint that reads back and verifies, trying `latest`'s file and any newer
  // complete one first, then older ones; nullopt when the directory holds none. Damaged files are
  // passed over and reported in `skipped`; a malformed `latest` is an error (see latest()).
  std::optional<FoundCheckpoint> load_newest() const;

 private:
  void remove_stale_temporaries() const;
  void prune(int keep_last, std::int64_t latest_step) const;

  std::string dir_;
};

namespace test_hooks {

// Points of the write protocol at which a test may stop the process (a crash), in order. The hook
// gets the checkpoint's path: the .tmp at kTmpWritten, step-<n>.h5 after that.
enum class CheckpointPhase { kTmpWritten, kRenamed, kLatestUpdated };
using CheckpointCrashHook = void (*)(CheckpointPhase phase, const std::string& path);
// Process-wide; nullptr (the default) means no hook.
void set_checkpoint_crash_hook(CheckpointCrashHook hook) noexcept;

}  // namespace test_hooks
}  // namespace dpt::io
