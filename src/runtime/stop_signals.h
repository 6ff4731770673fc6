// SPDX-License-Identifier: MIT
// Graceful stop on SIGTERM and SIGUSR1 (and SIGUSR2: a dump of the flight record) (what schedulers
// send before they kill a job: SLURM's
// `--signal`, `scancel --signal`, `kill`): the handler only records the signal; the trainer
// polls stop_signal() after each step, every rank agrees to stop after the same step, rank 0
// writes a checkpoint and all exit with 128 + the signal number.
#pragma once

namespace dpt {

// Installs the handlers for as long as it lives, and restores the previous ones after. One at a
// time per process.
class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
};

// The first stop signal received (SIGTERM or SIGUSR1), 0 when none.
int stop_signal() noexcept;
// For tests, and for the trainer to ask for a stop itself: as if `signal` had arrived.
void request_stop(int signal) noexcept;
void clear_stop_request() noexcept;

// SIGUSR2 asks for the flight record of recent collectives (comm/flight_recorder.h) without
// stopping: true once per SIGUSR2 received since the last call.
bool take_dump_request() noexcept;

}  // namespace dpt
