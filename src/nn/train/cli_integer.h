// SPDX-License-Identifier: MIT
// A CLI11 check for integer options. CLI11 2.1 converts with strtoll/strtoull and never looks at
// errno, so a value beyond the type's range saturates silently (--steps 99999999999999999999 ran as
// INT64_MAX steps), and strtoull takes "-5" for 2^64 - 5. This check runs before the conversion and
// turns both into an error that CLI11 reports with the flag's name.
#pragma once

#include <CLI/CLI.hpp>

#include <cerrno>
#include <cstdlib>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>

namespace dpt::nn {

template <typename T>
CLI::Validator integer_in_range() {
  static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>);
  return CLI::Validator(
      [](std::string& text) -> std::string {
        // The same reading as CLI11's (base 0: decimal, 0x hex, 0 octal).
        char* end = nullptr;
        errno = 0;
        bool in_range = true;
        if constexpr (std::is_signed_v<T>) {
          const long long value = std::strtoll(text.c_str(), &end, 0);
          in_range = errno != ERANGE && std::in_range<T>(value);
        } else {
          const unsigned long long value = std::strtoull(text.c_str(), &end, 0);
          in_range = errno != ERANGE && std::in_range<T>(value) &&
                     text.find('-') == std::string::npos;
        }
        if (end == text.c_str() || *end != '\0') return {};  // not a number: CLI11's own error
        if (in_range) return {};
        return "value " + text + " is out of range [" +
               std::to_string(+std::numeric_limits<T>::min()) + ", " +
               std::to_string(+std::numeric_limits<T>::max()) + "]";
      },
      "");
}

}  // namespace dpt::nn
