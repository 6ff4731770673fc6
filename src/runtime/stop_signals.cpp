// SPDX-License-Identifier: MIT
// Signal handlers that only store the signal number (async-signal-safe: one lock-free atomic).
#include "runtime/stop_signals.h"

#include <atomic>
#include <csignal>

#include "runtime/check.h"

namespace dpt {
namespace {

std::atomic<int> g_stop_signal{0};  // plain int: no resource, safe in static storage
static_assert(std::atomic<int>::is_always_lock_free, "signal handlers need a lock-free atomic");
std::atomic<bool> g_installed{false};

std::atomic<bool> g_dump_requested{false};
struct sigaction g_previous_term, g_previous_usr1, g_previous_usr2;

extern "C" void on_dump_signal(int) { g_dump_requested.store(true); }

extern "C" void on_stop_signal(int signal) {
  int expected = 0;
  g_stop_signal.compare_exchange_strong(expected, signal);
}

}  // namespace

StopSignals::StopSignals() {
  DPT_CHECK(!g_installed.exchange(true), "StopSignals: handlers are already installed");
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  // SA_RESTART: a signal must not make a blocking read or MPI call fail with EINTR.
  action.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &action, &g_previous_term);
  sigaction(SIGUSR1, &action, &g_previous_usr1);
  action.sa_handler = on_dump_signal;
  sigaction(SIGUSR2, &action, &g_previous_usr2);
}

StopSignals::~StopSignals() {
  sigaction(SIGTERM, &g_previous_term, nullptr);
  sigaction(SIGUSR1, &g_previous_usr1, nullptr);
  sigaction(SIGUSR2, &g_previous_usr2, nullptr);
  g_installed.store(false);
}

int stop_signal() noexcept { return g_stop_signal.load(); }
void request_stop(int signal) noexcept { on_stop_signal(signal); }
void clear_stop_request() noexcept { g_stop_signal.store(0); }
bool take_dump_request() noexcept { return g_dump_requested.exchange(false); }

}  // namespace dpt
