// SPDX-License-Identifier: MIT
// Watchdog: the deadline of the MPI communicator's collectives. A thread of its own watches the
// flight recorder; when a collective has run longer than the deadline it asks every other rank,
// over a private communicator, what it is doing, reports which ranks did not arrive, and ends the
// job.
#pragma once

#include <mpi.h>

#include <atomic>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "comm/flight_recorder.h"
#include "comm/mpi/mpi_check.h"

namespace dpt::comm::mpi {

// Note [Collective deadline]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~
// MPI cannot cancel a collective, and Open MPI's nonblocking collectives (libnbc) run large
// all-reduces 2-3x slower than its blocking ones, so the communication thread keeps its blocking
// calls and a second thread keeps the deadline (MPI_THREAD_MULTIPLE, which Environment asks for).
// Every 50 ms it reads the flight recorder: the collective in flight and since when. Past the
// deadline it sends a query to every other rank on a duplicate communicator of its own (point to
// point, so it can never match the collective that is stuck) and collects answers for a grace
// period. Each rank's watchdog answers at once whatever its other threads do: the collective it
// is in and for how long, or the last one it finished and how long ago. A rank that does not
// answer is stopped, dead or outside MPI's reach. The line it prints names the collective (kind,
// size, step, bucket), how long it waited and the ranks that did not arrive, with what each was
// doing; the ranks that answered get the verdict and print their own line; the job then ends
// with MPI_Abort. Without MPI_THREAD_MULTIPLE the watchdog cannot ask: it reports its own side
// and ends the job all the same. The deadline counts from when the collective started executing
// on this rank, so a long queue of buckets does not trip it.
class Watchdog {
 public:
  // Collective over `world` (duplicates it). `can_talk`: MPI_THREAD_MULTIPLE is provided.
  Watchdog(MPI_Comm world, const FlightRecorder& recorder, bool can_talk);
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  ~Watchdog();

  void set_timeout(double seconds) { timeout_s_.store(seconds); }
  double timeout() const { return timeout_s_.load(); }

 private:
  struct Outgoing {
    std::vector<char> bytes;
    MPI_Request request = MPI_REQUEST_NULL;
  };

  void run() noexcept;
  // Answers queries and takes verdicts; returns after one pass over the messages waiting.
  void serve(std::vector<std::string>* answers);
  void send(int to, int tag, const std::string& text);
  void reap_sends();
  void expire(const FlightRecorder::Status& status, double now);
  std::string own_state(double now) const;

  UniqueComm comm_;
  const FlightRecorder& recorder_;
  bool can_talk_;
  int rank_ = 0;
  int size_ = 1;
  std::atomic<double> timeout_s_{300.0};
  std::atomic<bool> stopping_{false};
  std::deque<Outgoing> outgoing_;
  std::thread thread_;  // last: starts once everything it reads exists
};

}  // namespace dpt::comm::mpi
