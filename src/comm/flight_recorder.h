// SPDX-License-Identifier: MIT
// FlightRecorder: the last few hundred collectives of this rank (sequence number, kind, size,
// step, bucket or purpose, when queued, started and finished), kept in a ring, so that a timeout,
// an error or SIGUSR2 can show what each rank was doing and where the ranks diverged. It is also
// the watchdog's source of truth for "which collective is in flight, since when".
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "comm/communicator.h"

namespace dpt::comm {

struct FlightEntry {
  std::int64_t seq = 0;  // 1, 2, ... in issue order (the same on every rank when in step)
  CollectiveKind kind = CollectiveKind::kAllReduce;
  std::int64_t count = 0;  // elements
  int element_bytes = 0;
  CollectiveLabel label;
  double queued = 0.0;    // steady seconds
  double started = 0.0;   // 0: not started
  double finished = 0.0;  // 0: not finished
  bool failed = false;
};

// "all-reduce of 1048576 floats (gradient bucket 3, step 40)".
std::string describe(const FlightEntry& entry);
std::string describe(CollectiveKind kind, std::int64_t count, int element_bytes,
                     const CollectiveLabel& label);

class FlightRecorder {
 public:
  explicit FlightRecorder(std::size_t capacity = 256);
  // A collective was queued; returns its sequence number.
  std::int64_t queued(CollectiveKind kind, std::int64_t count, int element_bytes,
                      const CollectiveLabel& label);
  void started(std::int64_t seq);
  void finished(std::int64_t seq, bool failed);

  // What the rank's communication is doing now.
  struct Status {
    std::int64_t in_flight = 0;  // the started, unfinished collective (0: none)
    std::string in_flight_text;  // its description
    double in_flight_since = 0.0;
    std::int64_t last_finished = 0;
    std::string last_finished_text;
    double idle_since = 0.0;  // when the last collective finished (or the recorder began)
    std::int64_t queued = 0;  // collectives issued so far
  };
  Status status() const;
  // The last `count` entries, oldest first, one line each, times relative to the recorder's
  // creation.
  std::string dump(std::size_t count) const;

 private:
  FlightEntry* find_locked(std::int64_t seq);

  mutable std::mutex mutex_;
  std::vector<FlightEntry> ring_;
  std::int64_t next_seq_ = 1;
  std::int64_t last_finished_ = 0;
  double created_;
  double idle_since_;
};

}  // namespace dpt::comm
