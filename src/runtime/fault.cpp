// SPDX-License-Identifier: MIT
// DPT_FAULT parsing and the injection points' one entry, at().
#include "runtime/fault.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <thread>

#include "runtime/check.h"
#include "runtime/logging.h"

namespace dpt::fault {
namespace {

struct State {
  std::mutex mutex;
  std::vector<Injection> injections;
  bool loaded = false;
};

State& state() {
  static State s;  // process-wide; the mutex guards it
  return s;
}

// False until DPT_FAULT (or set_for_testing) gave at least one injection: the fast path.
std::atomic<bool> g_armed{true};  // true until the first at() has looked at DPT_FAULT

const std::vector<std::pair<std::string_view, Action>>& action_names() {
  static const std::vector<std::pair<std::string_view, Action>> names = {
      {"sigkill", Action::kSigkill}, {"sigterm", Action::kSigterm}, {"stop", Action::kStop},
      {"exit", Action::kExit},       {"throw", Action::kThrow},     {"sleep", Action::kSleep},
      {"nan", Action::kNan},         {"inf", Action::kInf},         {"flip", Action::kFlip},
      {"skip", Action::kSkip},       {"leave", Action::kLeave}};
  return names;
}

bool is_caller_action(Action a) {
  return a == Action::kNan || a == Action::kInf || a == Action::kFlip || a == Action::kSkip ||
         a == Action::kLeave;
}

template <typename T>
T parse_number(std::string_view text, std::string_view entry, std::string_view what) {
  T value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  DPT_CHECK(ec == std::errc() && end == text.data() + text.size(), "DPT_FAULT entry '", entry,
            "': ", what, " '", text, "' is not a number");
  return value;
}

Injection parse_entry(std::string_view entry) {
  const auto at_sign = entry.find('@');
  DPT_CHECK(at_sign != std::string_view::npos, "DPT_FAULT entry '", entry,
            "' has no '@': expected <action>[=<arg>]@<point>[:rank=R][:step=S]");
  Injection injection;
  std::string_view action = entry.substr(0, at_sign);
  std::string_view argument;
  if (const auto eq = action.find('='); eq != std::string_view::npos) {
    argument = action.substr(eq + 1);
    action = action.substr(0, eq);
  }
  const auto& names = action_names();
  const auto found =
      std::find_if(names.begin(), names.end(), [&](const auto& n) { return n.first == action; });
  DPT_CHECK(
      found != names.end(), "DPT_FAULT entry '", entry, "': unknown action '", action,
      "' (expected sigkill, sigterm, stop, exit[=code], throw, sleep[=seconds], nan, inf, flip, "
      "skip or leave)");
  injection.action = found->second;
  if (!argument.empty()) {
    if (injection.action == Action::kSleep) {
      injection.seconds = parse_number<double>(argument, entry, "sleep seconds");
    } else if (injection.action == Action::kExit) {
      injection.exit_code = parse_number<int>(argument, entry, "exit code");
    } else {
      DPT_FAIL("DPT_FAULT entry '", entry, "': action '", action, "' takes no argument");
    }
  }
  std::string_view rest = entry.substr(at_sign + 1);
  const auto colon = rest.find(':');
  injection.point = std::string(rest.substr(0, colon));
  const auto& known = points();
  const auto point = std::find_if(known.begin(), known.end(),
                                  [&](const PointInfo& p) { return p.name == injection.point; });
  if (point == known.end()) {
    std::string list;
    for (const PointInfo& p : known) list += detail::str(list.empty() ? "" : ", ", p.name);
    DPT_FAIL("DPT_FAULT entry '", entry, "': unknown point '", injection.point,
             "' (expected one of ", list, ")");
  }
  if (is_caller_action(injection.action)) {
    const std::string_view supported = point->caller_actions;
    bool ok = false;
    for (std::size_t at = 0; at < supported.size();) {
      const auto space = std::min(supported.find(' ', at), supported.size());
      if (supported.substr(at, space - at) == action) ok = true;
      at = space + 1;
    }
    DPT_CHECK(ok, "DPT_FAULT entry '", entry, "': point '", point->name, "' (", point->where,
              ") does not support '", action, "'",
              supported.empty() ? std::string(" (only process-level actions)")
                                : detail::str(" (it supports ", supported, ")"));
  }
  while (colon != std::string_view::npos && !rest.empty()) {
    rest = rest.substr(rest.find(':') + 1);
    const auto next = rest.find(':');
    const std::string_view option = rest.substr(0, next);
    if (option.starts_with("rank=")) {
      injection.rank = parse_number<int>(option.substr(5), entry, "rank");
      DPT_CHECK(injection.rank >= 0, "DPT_FAULT entry '", entry, "': rank must be >= 0");
    } else if (option.starts_with("step=")) {
      injection.step = parse_number<std::int64_t>(option.substr(5), entry, "step");
      DPT_CHECK(injection.step >= 0, "DPT_FAULT entry '", entry, "': step must be >= 0");
    } else {
      DPT_FAIL("DPT_FAULT entry '", entry, "': unknown option '", option,
               "' (expected rank=R or step=S)");
    }
    if (next == std::string_view::npos) break;
  }
  return injection;
}

// Loads DPT_FAULT once; callers hold the state's mutex.
void load_locked(State& s) {
  if (s.loaded) return;
  s.loaded = true;
  const char* text = std::getenv("DPT_FAULT");
  s.injections = text != nullptr ? parse(text) : std::vector<Injection>{};
}

void carry_out(const Injection& injection, std::string_view point, std::int64_t step) {
  switch (injection.action) {
    case Action::kSigkill:
      std::fflush(nullptr);
      std::raise(SIGKILL);
      break;
    case Action::kSigterm:
      std::raise(SIGTERM);  // the handler (runtime/stop_signals.h) records it; training goes on
      break;
    case Action::kStop:
      std::fflush(nullptr);
      std::raise(SIGSTOP);  // returns after SIGCONT
      break;
    case Action::kExit:
      std::fflush(nullptr);
      std::_Exit(injection.exit_code);
    case Action::kThrow:
      DPT_FAIL("fault injected by DPT_FAULT at point '", point, "'",
               step >= 0 ? detail::str(", step ", step) : "");
    case Action::kSleep:
      if (injection.seconds < 0) {
        for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
      }
      std::this_thread::sleep_for(std::chrono::duration<double>(injection.seconds));
      break;
    default:
      break;
  }
}

}  // namespace

const char* to_string(Action action) {
  for (const auto& [name, a] : action_names()) {
    if (a == action) return name.data();
  }
  return "none";
}

float poison_value(Action action) {
  return action == Action::kNan ? std::numeric_limits<float>::quiet_NaN()
                                : std::numeric_limits<float>::infinity();
}

const std::vector<PointInfo>& points() {
  static const std::vector<PointInfo> table = {
      {"start", "", "after set-up, before the first step"},
      {"step", "skip leave", "the start of a training step"},
      {"forward", "nan inf", "before each micro-batch's forward (poisons this rank's input)"},
      {"allreduce", "nan inf", "a gradient bucket, before its all-reduce (poisons the bucket)"},
      {"optimizer", "flip", "after the optimizer step (flips one bit of a parameter)"},
      {"loader", "", "a batch read from the dataset"},
      {"checkpoint-tmp", "", "rank 0's checkpoint write: the temporary file is complete"},
      {"checkpoint-renamed", "", "rank 0's checkpoint write: the file has its final name"},
      {"checkpoint-latest", "", "rank 0's checkpoint write: `latest` names the new file"},
      {"end", "", "after the last step, before the final evaluation and checkpoint"},
  };
  return table;
}

std::vector<Injection> parse(std::string_view text) {
  std::vector<Injection> injections;
  for (std::size_t at = 0; at <= text.size();) {
    const auto comma = std::min(text.find(',', at), text.size());
    const std::string_view entry = text.substr(at, comma - at);
    if (!entry.empty()) injections.push_back(parse_entry(entry));
    at = comma + 1;
  }
  return injections;
}

void load_from_environment() {
  State& s = state();
  std::lock_guard lock(s.mutex);
  load_locked(s);
  g_armed.store(!s.injections.empty(), std::memory_order_relaxed);
}

void set_for_testing(std::string_view text) {
  State& s = state();
  std::lock_guard lock(s.mutex);
  s.injections = parse(text);
  s.loaded = true;
  g_armed.store(!s.injections.empty(), std::memory_order_relaxed);
}

Action at(std::string_view point, std::int64_t step) {
  if (!g_armed.load(std::memory_order_relaxed)) return Action::kNone;
  State& s = state();
  Injection due;
  {
    std::lock_guard lock(s.mutex);
    load_locked(s);
    if (s.injections.empty()) {
      g_armed.store(false, std::memory_order_relaxed);
      return Action::kNone;
    }
    const int rank = std::max(0, process_rank());
    for (Injection& injection : s.injections) {
      if (injection.fired || injection.point != point) continue;
      if (injection.rank >= 0 && injection.rank != rank) continue;
      if (injection.step >= 0 && injection.step != step) continue;
      injection.fired = true;
      due = injection;
      break;
    }
  }
  if (due.action == Action::kNone) return Action::kNone;
  // Info, not a warning: an injected fault is what the test asked for.
  log(LogLevel::kInfo, "DPT_FAULT: injecting ", to_string(due.action), " at point '", point, "'",
      step >= 0 ? detail::str(", step ", step) : std::string());
  if (is_caller_action(due.action)) return due.action;
  carry_out(due, point, step);
  return Action::kNone;
}

}  // namespace dpt::fault
