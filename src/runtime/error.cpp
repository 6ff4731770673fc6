// SPDX-License-Identifier: MIT
// The one formatter behind every check macro, and the process rank it reports.
#include "runtime/error.h"

#include <atomic>
#include <sstream>

namespace dpt {
namespace {
std::atomic<int> g_rank{-1};  // a plain int: no resource, safe in static storage
}

const char* to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kInvalidArgument: return "invalid argument";
    case ErrorKind::kIo: return "I/O";
    case ErrorKind::kComm: return "communication";
    case ErrorKind::kCuda: return "CUDA";
    case ErrorKind::kInternal: return "internal";
  }
  return "unknown";
}

void set_process_rank(int rank) noexcept { g_rank.store(rank); }
int process_rank() noexcept { return g_rank.load(); }

namespace detail {
std::string format_error(ErrorKind kind, const char* expr, const std::string& message,
                         const char* file, int line) {
  std::ostringstream out;
  out << message << " [" << to_string(kind) << " error";
  if (expr != nullptr) out << ": `" << expr << '`';
  out << " at " << file << ':' << line;
  if (process_rank() >= 0) out << ", rank " << process_rank();
  out << ']';
  return out.str();
}

void throw_error(ErrorKind kind, const char* expr, const std::string& message, const char* file,
                 int line) {
  throw Error(kind, format_error(kind, expr, message, file, line), message);
}
}  // namespace detail

}  // namespace dpt
