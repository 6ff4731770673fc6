// SPDX-License-Identifier: MIT
// FlightRecorder: a fixed ring of entries guarded by one mutex (a few lock/unlocks per
// collective: nothing next to the collective itself).
#include "comm/flight_recorder.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "comm/work_clock.h"
#include "runtime/check.h"

namespace dpt::comm {

const char* to_string(CollectiveKind kind) {
  switch (kind) {
    case CollectiveKind::kAllReduce:
      return "all-reduce";
    case CollectiveKind::kExactSum:
      return "exact sum";
    case CollectiveKind::kBroadcast:
      return "broadcast";
    case CollectiveKind::kAllGather:
      return "all-gather";
    case CollectiveKind::kGather:
      return "gather";
    case CollectiveKind::kScatter:
      return "scatter";
    case CollectiveKind::kReduceScatter:
      return "reduce-scatter";
    case CollectiveKind::kBarrier:
      return "barrier";
  }
  return "collective";
}

namespace {
const char* element_name(int bytes, std::int64_t count) {
  const bool one = count == 1;
  switch (bytes) {
    case 1:
      return one ? "byte" : "bytes";
    case 4:
      return one ? "float" : "floats";
    case 8:
      return one ? "8-byte value" : "8-byte values";
    default:
      return one ? "element" : "elements";
  }
}
}  // namespace

std::string describe(CollectiveKind kind, std::int64_t count, int element_bytes,
                     const CollectiveLabel& label) {
  std::ostringstream out;
  out << to_string(kind);
  if (kind != CollectiveKind::kBarrier) {
    out << " of " << count << ' ' << element_name(element_bytes, count);
  }
  std::string context = label.what;
  if (label.bucket >= 0) context += ::dpt::detail::str(context.empty() ? "" : " ", label.bucket);
  if (label.step >= 0)
    context += ::dpt::detail::str(context.empty() ? "" : ", ", "step ", label.step);
  if (!context.empty()) out << " (" << context << ')';
  return out.str();
}

std::string describe(const FlightEntry& e) {
  return describe(e.kind, e.count, e.element_bytes, e.label);
}

FlightRecorder::FlightRecorder(std::size_t capacity)
    : ring_(std::max<std::size_t>(capacity, 1)),
      created_(detail::steady_seconds()),
      idle_since_(created_) {}

std::int64_t FlightRecorder::queued(CollectiveKind kind, std::int64_t count, int element_bytes,
                                    const CollectiveLabel& label) {
  std::lock_guard lock(mutex_);
  const std::int64_t seq = next_seq_++;
  FlightEntry& e = ring_[static_cast<std::size_t>(seq) % ring_.size()];
  e = FlightEntry{};
  e.seq = seq;
  e.kind = kind;
  e.count = count;
  e.element_bytes = element_bytes;
  e.label = label;
  e.queued = detail::steady_seconds();
  return seq;
}

FlightEntry* FlightRecorder::find_locked(std::int64_t seq) {
  FlightEntry& e = ring_[static_cast<std::size_t>(seq) % ring_.size()];
  return e.seq == seq ? &e : nullptr;
}

void FlightRecorder::started(std::int64_t seq) {
  std::lock_guard lock(mutex_);
  if (FlightEntry* e = find_locked(seq)) e->started = detail::steady_seconds();
}

void FlightRecorder::finished(std::int64_t seq, bool failed) {
  std::lock_guard lock(mutex_);
  const double now = detail::steady_seconds();
  if (FlightEntry* e = find_locked(seq)) {
    e->finished = now;
    e->failed = failed;
  }
  last_finished_ = std::max(last_finished_, seq);
  idle_since_ = now;
}

FlightRecorder::Status FlightRecorder::status() const {
  std::lock_guard lock(mutex_);
  Status s;
  s.queued = next_seq_ - 1;
  s.last_finished = last_finished_;
  s.idle_since = idle_since_;
  for (const FlightEntry& e : ring_) {
    if (e.seq > 0 && e.started > 0.0 && e.finished == 0.0 && e.seq > s.in_flight) {
      s.in_flight = e.seq;
      s.in_flight_text = describe(e);
      s.in_flight_since = e.started;
    }
    if (e.seq > 0 && e.seq == last_finished_) s.last_finished_text = describe(e);
  }
  return s;
}

std::string FlightRecorder::dump(std::size_t count) const {
  std::lock_guard lock(mutex_);
  std::ostringstream out;
  const std::int64_t last = next_seq_ - 1;
  const std::int64_t first = std::max<std::int64_t>(
      1, last - static_cast<std::int64_t>(std::min(count, ring_.size())) + 1);
  char times[96];
  for (std::int64_t seq = first; seq <= last; ++seq) {
    const FlightEntry& e = ring_[static_cast<std::size_t>(seq) % ring_.size()];
    if (e.seq != seq) continue;
    if (e.finished > 0.0) {
      std::snprintf(times, sizeof times, "started %+.3f s, took %.3f ms%s", e.started - created_,
                    (e.finished - e.started) * 1e3, e.failed ? ", FAILED" : "");
    } else if (e.started > 0.0) {
      std::snprintf(times, sizeof times, "started %+.3f s, IN FLIGHT for %.3f s",
                    e.started - created_, detail::steady_seconds() - e.started);
    } else {
      std::snprintf(times, sizeof times, "queued %+.3f s, not started", e.queued - created_);
    }
    out << "\n  #" << seq << ' ' << describe(e) << ": " << times;
  }
  return out.str();
}

}  // namespace dpt::comm
