// SPDX-License-Identifier: MIT
// JSON-lines metrics file and the terminal-aware progress line.
#include "nn/train/metrics.h"

#include <unistd.h>

#include "runtime/check.h"

namespace dpt::nn {

MetricsWriter::MetricsWriter(const std::string& path) : path_(path) {
  if (path.empty()) return;
  out_.open(path, std::ios::out | std::ios::trunc);
  DPT_CHECK_KIND(ErrorKind::kIo, out_.is_open(), "metrics: cannot open '", path,
                 "' for writing");
}

void MetricsWriter::write_line(const std::string& json) {
  if (!out_.is_open()) return;
  out_ << json << '\n';
  out_.flush();
  DPT_CHECK_KIND(ErrorKind::kIo, out_.good(), "metrics: write to '", path_,
                 "' failed (disk full?)");
}

ProgressLine::ProgressLine(bool quiet, std::string prefix)
    : quiet_(quiet), prefix_(std::move(prefix)), tty_(isatty(STDERR_FILENO) == 1) {}

ProgressLine::~ProgressLine() {
  if (line_open_) std::fputc('\n', stderr);
}

void ProgressLine::update(const std::string& text) {
  if (quiet_) return;
  if (tty_) {
    // \r returns to the line start, \033[K clears what a longer previous line left behind.
    std::fprintf(stderr, "\r%s%s\033[K", prefix_.c_str(), text.c_str());
    line_open_ = true;
  } else {
    std::fprintf(stderr, "%s%s\n", prefix_.c_str(), text.c_str());
  }
  std::fflush(stderr);
}

void ProgressLine::print(const std::string& text) {
  if (quiet_) return;
  if (line_open_) {
    std::fputc('\n', stderr);
    line_open_ = false;
  }
  std::fprintf(stderr, "%s%s\n", prefix_.c_str(), text.c_str());
  std::fflush(stderr);
}

}  // namespace dpt::nn
