// SPDX-License-Identifier: MIT
// Logging through spdlog with a "[rank r]" prefix once distributed. Level from DPT_LOG_LEVEL
// (trace, debug, info, warn, error) or set_log_level().
#pragma once

#include <functional>
#include <string>

#include "runtime/check.h"

namespace dpt {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

void set_log_level(LogLevel level);
// Tests install a sink to turn warnings into failures; nullptr restores the default. Returns the
// sink it replaces, so a test can capture lines for a while and then put the previous one back.
std::function<void(LogLevel, const std::string&)> set_log_sink(
    std::function<void(LogLevel, const std::string&)> sink);
void log_message(LogLevel level, const std::string& message);

template <typename... Parts>
void log(LogLevel level, const Parts&... parts) {
  log_message(level, detail::str(parts...));
}

// Logs only on rank 0 (or when not distributed).
template <typename... Parts>
void log_rank0(LogLevel level, const Parts&... parts) {
  if (process_rank() <= 0) log_message(level, detail::str(parts...));
}

}  // namespace dpt
