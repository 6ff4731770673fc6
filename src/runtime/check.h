// SPDX-License-Identifier: MIT
// Check macros: DPT_CHECK for caller errors (always on), DPT_FAIL where the code already knows it
// failed, DPT_ASSERT for internal invariants, and the DPT_CHECK_STATUS pair every backend's status
// macro (CUDA, cuDNN, cuBLASLt, NCCL, MPI, HDF5) is a one-line use of.
#pragma once

#include <sstream>
#include <string>

#include "runtime/error.h"

namespace dpt::detail {
template <typename... Parts>
std::string str(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}

// The _LOG half of DPT_CHECK_STATUS: describing the status may itself throw (it builds a string),
// and a destructor must not, so the description is built here, inside the catch.
template <typename Describe>
void log_status_error(ErrorKind kind, const char* expr, const Describe& describe, const char* file,
                      int line) noexcept {
  try {
    log_error(kind, expr, describe(), file, line);
  } catch (...) {  // nothing to report with: go on, as the caller must
  }
}
}  // namespace dpt::detail

#define DPT_CHECK(cond, ...)                                                                  \
  do {                                                                                        \
    if (!(cond)) {                                                                            \
      ::dpt::detail::throw_error(::dpt::ErrorKind::kInvalidArgument, #cond,                   \
                                 ::dpt::detail::str(__VA_ARGS__), __FILE__, __LINE__);        \
    }                                                                                         \
  } while (false)

// Like DPT_CHECK but with an explicit kind (kIo for file problems, kComm for peers, ...).
#define DPT_CHECK_KIND(kind, cond, ...)                                                       \
  do {                                                                                        \
    if (!(cond)) {                                                                            \
      ::dpt::detail::throw_error((kind), #cond, ::dpt::detail::str(__VA_ARGS__), __FILE__,    \
                                 __LINE__);                                                   \
    }                                                                                         \
  } while (false)

// Throws unconditionally, for the branch that has already decided (an unknown name, a backend
// not built in). A call of the [[noreturn]] throw_error, so no "unreachable" return follows it.
#define DPT_FAIL(...) DPT_FAIL_KIND(::dpt::ErrorKind::kInvalidArgument, __VA_ARGS__)
#define DPT_FAIL_KIND(kind, ...)                                                              \
  ::dpt::detail::throw_error((kind), nullptr, ::dpt::detail::str(__VA_ARGS__), __FILE__, __LINE__)

#define DPT_ASSERT(cond)                                                                      \
  do {                                                                                        \
    if (!(cond)) {                                                                            \
      ::dpt::detail::throw_error(::dpt::ErrorKind::kInternal, #cond, "internal invariant",    \
                                 __FILE__, __LINE__);                                         \
    }                                                                                         \
  } while (false)

// The status `expr` returns passes when is_ok(status); otherwise DPT_CHECK_STATUS throws a `kind`
// dpt::Error with describe(status) (the library's own words), the call, file:line and rank.
// DPT_CHECK_STATUS_LOG logs the same text as a warning and goes on: for destructors and clean-up.
// is_ok and describe are function names (overloads and templates work: they are called, not
// passed); each backend defines its pair next to its macros.
#define DPT_CHECK_STATUS(kind, expr, is_ok, describe)                                         \
  do {                                                                                        \
    const auto dpt_status_ = (expr);                                                          \
    if (!is_ok(dpt_status_)) {                                                                \
      ::dpt::detail::throw_error((kind), #expr, describe(dpt_status_), __FILE__, __LINE__);   \
    }                                                                                         \
  } while (false)

#define DPT_CHECK_STATUS_LOG(kind, expr, is_ok, describe)                                     \
  do {                                                                                        \
    const auto dpt_status_ = (expr);                                                          \
    if (!is_ok(dpt_status_)) {                                                                \
      ::dpt::detail::log_status_error(                                                        \
          (kind), #expr, [&] { return describe(dpt_status_); }, __FILE__, __LINE__);          \
    }                                                                                         \
  } while (false)
