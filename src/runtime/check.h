// SPDX-License-Identifier: MIT
// Check macros: DPT_CHECK for caller errors (always on), DPT_ASSERT for internal invariants,
// DPT_CHECK_STATUS for C status codes of backend libraries.
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

#define DPT_ASSERT(cond)                                                                      \
  do {                                                                                        \
    if (!(cond)) {                                                                            \
      ::dpt::detail::throw_error(::dpt::ErrorKind::kInternal, #cond, "internal invariant",    \
                                 __FILE__, __LINE__);                                         \
    }                                                                                         \
  } while (false)

#define DPT_CHECK_STATUS(expr, ok, to_string_fn, kind)                                        \
  do {                                                                                        \
    const auto dpt_status_ = (expr);                                                          \
    if (dpt_status_ != (ok)) {                                                                \
      ::dpt::detail::throw_error((kind), #expr, to_string_fn(dpt_status_), __FILE__,          \
                                 __LINE__);                                                   \
    }                                                                                         \
  } while (false)
