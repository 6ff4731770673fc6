// SPDX-License-Identifier: MIT
// The one exception type of dptrain: what failed, the expression, file:line and the rank.
#pragma once

#include <stdexcept>
#include <string>

namespace dpt {

enum class ErrorKind { kInvalidArgument, kIo, kComm, kCuda, kInternal };

const char* to_string(ErrorKind kind);

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, std::string message) : Error(kind, message, message) {}
  // `what` is the full text (with expression, file:line and rank); `message` the sentence alone,
  // for callers that wrap one error in another.
  Error(ErrorKind kind, const std::string& what, std::string message)
      : std::runtime_error(what), kind_(kind), message_(std::move(message)) {}
  ErrorKind kind() const noexcept { return kind_; }
  const std::string& message() const noexcept { return message_; }

 private:
  ErrorKind kind_;
  std::string message_;
};

// The rank this process reports in errors and log lines. Set once by the communicator at start-up;
// -1 means "not distributed".
void set_process_rank(int rank) noexcept;
int process_rank() noexcept;

namespace detail {
// "<message> [<kind> error: `expr` at file:line, rank r]"; without "`expr`" when expr is null
// (DPT_FAIL: there is no condition to show), without the rank before one is set.
std::string format_error(ErrorKind kind, const char* expr, const std::string& message,
                         const char* file, int line);
// Throws dpt::Error with format_error()'s text.
[[noreturn]] void throw_error(ErrorKind kind, const char* expr, const std::string& message,
                              const char* file, int line);
// Logs format_error()'s text as a warning and returns: for destructors and clean-up paths, which
// must go on (defined with the logger, in logging.cpp).
void log_error(ErrorKind kind, const char* expr, const std::string& message, const char* file,
               int line) noexcept;
}  // namespace detail

}  // namespace dpt
