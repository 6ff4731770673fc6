// SPDX-License-Identifier: MIT
// The checkpoint directory's write protocol, `latest`, pruning and the newest-good search.
#include "runtime/io/checkpoint_dir.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "runtime/check.h"
#include "runtime/fault.h"
#include "runtime/io/posix_file.h"
#include "runtime/logging.h"

namespace dpt::io {

namespace test_hooks {
namespace {
std::atomic<CheckpointCrashHook> g_crash_hook{nullptr};
}  // namespace
void set_checkpoint_crash_hook(CheckpointCrashHook hook) noexcept { g_crash_hook.store(hook); }
}  // namespace test_hooks

namespace {

namespace fs = std::filesystem;

#define DPT_DIR_CHECK(cond, ...) DPT_CHECK_KIND(::dpt::ErrorKind::kIo, cond, __VA_ARGS__)

constexpr const char* kLatest = "latest";
constexpr const char* kTmpSuffix = ".tmp";
// `latest` holds one short line; anything longer is not ours.
constexpr std::size_t kMaxLatestBytes = 256;

void crash_point(test_hooks::CheckpointPhase phase, const std::string& path) {
  if (auto hook = test_hooks::g_crash_hook.load()) hook(phase, path);
  // The same points for DPT_FAULT (runtime/fault.h), so that a job can be killed there from
  // outside a unit test.
  switch (phase) {
    case test_hooks::CheckpointPhase::kTmpWritten:
      fault::at("checkpoint-tmp");
      break;
    case test_hooks::CheckpointPhase::kRenamed:
      fault::at("checkpoint-renamed");
      break;
    case test_hooks::CheckpointPhase::kLatestUpdated:
      fault::at("checkpoint-latest");
      break;
  }
}

// The step of a name "step-<n>.h5" (digits only, no sign, no leading '+'), else nullopt.
std::optional<std::int64_t> parse_step_name(const std::string& name) {
  constexpr std::string_view prefix = "step-", suffix = ".h5";
  if (name.size() <= prefix.size() + suffix.size() || !name.starts_with(prefix) ||
      !name.ends_with(suffix)) {
    return std::nullopt;
  }
  const std::string_view digits(name.data() + prefix.size(),
                                name.size() - prefix.size() - suffix.size());
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  std::int64_t step = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), step);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;  // overflow
  return step;
}

std::string errno_text() { return std::strerror(errno); }

// True when `path` (made absolute and free of "..", symbolic links resolved as far as they exist)
// lies under `dir` (likewise); false when either cannot be resolved.
bool lies_under(const fs::path& path, const fs::path& dir) {
  std::error_code ec;
  const fs::path p = fs::weakly_canonical(fs::absolute(path, ec), ec);
  if (ec || p.empty()) return false;
  const fs::path d = fs::weakly_canonical(fs::absolute(dir, ec), ec);
  if (ec || d.empty()) return false;
  const auto d_end = std::mismatch(d.begin(), d.end(), p.begin(), p.end()).first;
  // "dir/" ends in an empty component: what follows the mismatch there is still inside.
  return d_end == d.end() || (std::next(d_end) == d.end() && d_end->empty());
}

// A checkpoint file or `latest` reached through a symbolic link must stay inside the directory:
// a link to elsewhere would make dptrain read, report on and load a file it never wrote. Refused
// without reading it; the message names the link and where it leads.
void check_link_stays_inside(const std::string& dir, const fs::path& entry) {
  std::error_code ec;
  if (!fs::is_symlink(entry, ec)) return;
  const fs::path target = fs::read_symlink(entry, ec);
  DPT_DIR_CHECK(!ec, entry.string(), ": cannot read the symbolic link: ", ec.message());
  const fs::path resolved = target.is_absolute() ? target : entry.parent_path() / target;
  DPT_DIR_CHECK(lies_under(resolved, dir), entry.string(), " is a symbolic link to ",
                target.string(), ", outside the checkpoint directory ", dir,
                ": refusing to follow it (copy the file into the directory instead)");
}

void rename_file(const std::string& from, const std::string& to) {
  DPT_DIR_CHECK(::rename(from.c_str(), to.c_str()) == 0, "cannot rename ", from, " to ", to, ": ",
                errno_text());
}

// Removes `path` if it exists; a failure is logged, never thrown (clean-up must not mask the
// error that made it necessary).
void remove_quietly(const std::string& path) noexcept {
  std::error_code ec;
  fs::remove(path, ec);
  if (ec) {
    try {
      log(LogLevel::kWarning, "cannot remove ", path, ": ", ec.message());
    } catch (...) {
    }
  }
}

}  // namespace

std::string checkpoint_file_name(std::int64_t step) {
  return dpt::detail::str("step-", step, ".h5");
}

CheckpointDir::CheckpointDir(std::string dir) : dir_(std::move(dir)) {
  DPT_CHECK(!dir_.empty(), "checkpoint directory: empty path");
}

void CheckpointDir::prepare() const {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  DPT_DIR_CHECK(!ec, "checkpoint directory ", dir_, ": cannot create it: ", ec.message());
  DPT_DIR_CHECK(fs::is_directory(dir_, ec), "checkpoint directory ", dir_,
                ": exists but is not a directory");
  // Prove the whole write path (create, write, fsync, remove) now rather than at the first save.
  const std::string probe = (fs::path(dir_) / ".dptrain-write-probe").string();
  try {
    write_whole_file(probe, "dptrain\n", /*sync=*/true);  // removes what it wrote on failure
  } catch (const Error& e) {
    DPT_DIR_CHECK(false, "checkpoint directory ", dir_, " is not writable: ", e.message());
  }
  DPT_DIR_CHECK(::unlink(probe.c_str()) == 0, "checkpoint directory ", dir_,
                ": cannot remove files in it: ", errno_text());
  remove_stale_temporaries();
  // Links leading out of the directory fail now, not at the first save's pruning.
  check_link_stays_inside(dir_, fs::path(dir_) / kLatest);
  (void)list();
}

void CheckpointDir::remove_stale_temporaries() const {
  std::error_code ec;
  for (const auto& item : fs::directory_iterator(dir_, ec)) {
    const std::string name = item.path().filename().string();
    if (!name.ends_with(kTmpSuffix)) continue;
    const std::string base = name.substr(0, name.size() - std::strlen(kTmpSuffix));
    // Only our own temporaries: step-<n>.h5.tmp and latest.tmp.
    if (base != kLatest && !parse_step_name(base)) continue;
    log(LogLevel::kInfo, "removing ", item.path().string(),
        ": left by an interrupted checkpoint write");
    remove_quietly(item.path().string());
  }
}

std::string CheckpointDir::save(const CheckpointState& state, int keep_last) const {
  DPT_CHECK(state.step >= 0, "checkpoint: step must be >= 0, got ", state.step);
  const std::string name = checkpoint_file_name(state.step);
  const std::string final_path = (fs::path(dir_) / name).string();
  const std::string tmp_path = final_path + kTmpSuffix;
  try {
    write_checkpoint_file(tmp_path, state);
    fsync_path(tmp_path, /*directory=*/false);
    crash_point(test_hooks::CheckpointPhase::kTmpWritten, tmp_path);
    rename_file(tmp_path, final_path);
  } catch (const Error& e) {
    remove_quietly(tmp_path);
    DPT_DIR_CHECK(false, "checkpoint of step ", state.step, " not written (", e.message(),
                  "); removed ", tmp_path, ", the previous checkpoints and ", dir_,
                  "/latest are unchanged");
  }
  fsync_path(dir_, /*directory=*/true);
  crash_point(test_hooks::CheckpointPhase::kRenamed, final_path);

  const std::string latest_path = (fs::path(dir_) / kLatest).string();
  const std::string latest_tmp = latest_path + kTmpSuffix;
  try {
    write_whole_file(latest_tmp, name + "\n", /*sync=*/true);
    rename_file(latest_tmp, latest_path);
    fsync_path(dir_, /*directory=*/true);
  } catch (const Error& e) {
    remove_quietly(latest_tmp);
    DPT_DIR_CHECK(false, "checkpoint ", final_path, " written but ", latest_path, " not updated (",
                  e.message(), "); it still names the previous checkpoint");
  }
  crash_point(test_hooks::CheckpointPhase::kLatestUpdated, final_path);
  prune(keep_last, state.step);
  return final_path;
}

void CheckpointDir::prune(int keep_last, std::int64_t latest_step) const {
  if (keep_last <= 0) return;
  int kept = 0;
  for (const CheckpointRef& c : list()) {
    // Only dptrain checkpoints count and go: a stranger's file named step-<n>.h5 is left alone and
    // does not take the place of a real checkpoint.
    if (!is_checkpoint_file(c.path)) {
      log(LogLevel::kWarning, "keep-last: leaving ", c.path,
          " alone: it is not a dptrain checkpoint");
      continue;
    }
    if (c.step == latest_step || kept < keep_last) {
      ++kept;
      continue;
    }
    remove_quietly(c.path);
  }
}

std::optional<CheckpointRef> CheckpointDir::latest() const {
  const std::string latest_path = (fs::path(dir_) / kLatest).string();
  std::error_code ec;
  check_link_stays_inside(dir_, latest_path);
  if (!fs::exists(latest_path, ec)) return std::nullopt;
  std::ifstream in(latest_path, std::ios::binary);
  DPT_DIR_CHECK(in.good(), "cannot read ", latest_path);
  std::string text(kMaxLatestBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  const std::optional<std::int64_t> step = parse_step_name(text);
  // Only a bare name inside this directory: "../x", "/abs/path" or "a/step-1.h5" never match.
  std::string shown = text.size() > 64 ? text.substr(0, 64) + "..." : text;
  for (char& c : shown) {
    if (c < 0x20 || c > 0x7e) c = '?';
  }
  DPT_DIR_CHECK(step.has_value(), latest_path,
                ": expected the name of a checkpoint in this directory (step-<n>.h5), found \"",
                shown, "\"");
  return CheckpointRef{*step, (fs::path(dir_) / text).string()};
}

std::vector<CheckpointRef> CheckpointDir::list() const {
  std::vector<CheckpointRef> out;
  std::error_code ec;
  for (const auto& item : fs::directory_iterator(dir_, ec)) {
    if (const auto step = parse_step_name(item.path().filename().string())) {
      check_link_stays_inside(dir_, item.path());
      if (item.is_regular_file(ec)) out.push_back({*step, item.path().string()});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const CheckpointRef& a, const CheckpointRef& b) { return a.step > b.step; });
  return out;
}

std::optional<FoundCheckpoint> CheckpointDir::load_newest() const {
  std::error_code ec;
  if (!fs::is_directory(dir_, ec)) return std::nullopt;
  remove_stale_temporaries();
  const std::optional<CheckpointRef> named = latest();
  FoundCheckpoint found;
  if (named && !fs::exists(named->path, ec)) {
    found.skipped.push_back(
        dpt::detail::str(named->path, ": named by ", dir_, "/latest but missing"));
  }
  // Files newer than `latest` are complete too (renamed only after fsync; the crash came before
  // `latest` was updated), so the newest file wins whatever `latest` says.
  for (const CheckpointRef& c : list()) {
    try {
      found.state = read_checkpoint_file(c.path);
      DPT_DIR_CHECK(found.state.step == c.step, c.path, ": attribute 'step' of / is ",
                    found.state.step, " but the file name says ", c.step);
      found.path = c.path;
      return found;
    } catch (const Error& e) {
      found.skipped.push_back(e.message());
    }
  }
  if (!found.skipped.empty()) {
    std::ostringstream all;
    for (const std::string& s : found.skipped) all << "\n  " << s;
    DPT_DIR_CHECK(false, "checkpoint directory ", dir_,
                  " holds checkpoints but none reads back intact:", all.str());
  }
  return std::nullopt;
}

}  // namespace dpt::io
