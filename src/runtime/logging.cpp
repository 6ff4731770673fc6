// SPDX-License-Identifier: MIT
// spdlog-backed logging with a rank prefix and a replaceable sink for tests.
#include "runtime/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <mutex>
#include <string_view>
#include <utility>

namespace dpt {
namespace {

// The logger and the sink are process-wide configuration, not device resources.
std::mutex g_mutex;
std::function<void(LogLevel, const std::string&)> g_sink;

spdlog::level::level_enum to_spdlog(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return spdlog::level::debug;
    case LogLevel::kInfo: return spdlog::level::info;
    case LogLevel::kWarning: return spdlog::level::warn;
    case LogLevel::kError: return spdlog::level::err;
  }
  return spdlog::level::info;
}

spdlog::logger& logger() {
  static std::shared_ptr<spdlog::logger> instance = [] {
    auto l = spdlog::stderr_color_mt("dpt");
    l->set_pattern("%^[%H:%M:%S %l]%$ %v");
    l->set_level(spdlog::level::info);
    if (const char* env = std::getenv("DPT_LOG_LEVEL")) {
      const std::string_view name(env);
      // spdlog maps unknown names to "off", which would hide the error that says why a run
      // stopped: keep the default and say so instead.
      if (name == "trace" || name == "debug" || name == "info" || name == "warn" ||
          name == "error") {
        l->set_level(spdlog::level::from_str(env));
      } else {
        l->warn("DPT_LOG_LEVEL='{}' ignored: expected trace, debug, info, warn or error", name);
      }
    }
    return l;
  }();
  return *instance;
}

}  // namespace

void set_log_level(LogLevel level) { logger().set_level(to_spdlog(level)); }

std::function<void(LogLevel, const std::string&)> set_log_sink(
    std::function<void(LogLevel, const std::string&)> sink) {
  std::lock_guard lock(g_mutex);
  return std::exchange(g_sink, std::move(sink));
}

void log_message(LogLevel level, const std::string& message) {
  std::function<void(LogLevel, const std::string&)> sink;
  {
    std::lock_guard lock(g_mutex);
    sink = g_sink;  // called outside the lock, so a sink may itself log
  }
  if (sink) {
    sink(level, message);
    return;
  }
  const int rank = process_rank();
  // Errors always say which rank failed; a process outside a distributed job is rank 0.
  if (rank >= 0 || level == LogLevel::kError) {
    logger().log(to_spdlog(level), "[rank {}] {}", rank >= 0 ? rank : 0, message);
  } else {
    logger().log(to_spdlog(level), "{}", message);
  }
}

namespace detail {
void log_error(ErrorKind kind, const char* expr, const std::string& message, const char* file,
               int line) noexcept {
  try {
    log_message(LogLevel::kWarning, format_error(kind, expr, message, file, line));
  } catch (...) {  // out of memory, or a test sink that throws: clean-up must still go on
  }
}
}  // namespace detail

}  // namespace dpt
