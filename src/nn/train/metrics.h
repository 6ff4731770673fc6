// SPDX-License-Identifier: MIT
// Metrics as JSON lines (one object a line, flushed, so a crashed run keeps what it wrote) and the
// console progress line (updated in place on a terminal, plain lines otherwise).
#pragma once

#include <cstdio>
#include <fstream>
#include <string>

namespace dpt::nn {

class MetricsWriter {
 public:
  // Empty path: writes nothing.
  explicit MetricsWriter(const std::string& path);
  bool enabled() const { return out_.is_open(); }
  // Writes one line of JSON text (already serialised) and flushes it.
  void write_line(const std::string& json);

 private:
  std::string path_;
  std::ofstream out_;
};

class ProgressLine {
 public:
  // prefix goes before every line (e.g. "[rank 3] " with --log-all-ranks).
  explicit ProgressLine(bool quiet, std::string prefix = "");
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;
  ~ProgressLine();
  // Replaces the current progress line (a terminal) or prints it as a line of its own.
  void update(const std::string& text);
  // Prints a permanent line (eval results), below the progress line.
  void print(const std::string& text);

 private:
  bool quiet_;
  std::string prefix_;
  bool tty_;
  bool line_open_ = false;
};

}  // namespace dpt::nn
