// SPDX-License-Identifier: MIT
#include "nn/train/timeline_writer.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "runtime/check.h"

namespace dpt::nn {

void write_timeline(comm::Communicator& comm, const Timeline& timeline, const std::string& path) {
  nlohmann::json events = nlohmann::json::array();
  const int rank = comm.rank();
  for (const TimelineSpan& s : timeline.spans()) {
    events.push_back({{"name", s.name},
                      {"cat", s.category},
                      {"ph", "X"},
                      {"pid", rank},
                      {"tid", static_cast<int>(s.track)},
                      {"ts", (s.start_s - timeline.origin_s()) * 1e6},
                      {"dur", (s.end_s - s.start_s) * 1e6}});
  }
  const std::vector<std::string> all = comm.all_gather(events.dump());
  if (rank != 0) return;
  nlohmann::json merged = nlohmann::json::array();
  for (std::size_t r = 0; r < all.size(); ++r) {
    const int pid = static_cast<int>(r);
    merged.push_back({{"name", "process_name"},
                      {"ph", "M"},
                      {"pid", pid},
                      {"args", {{"name", "rank " + std::to_string(r)}}}});
    merged.push_back({{"name", "process_sort_index"},
                      {"ph", "M"},
                      {"pid", pid},
                      {"args", {{"sort_index", pid}}}});
    merged.push_back({{"name", "thread_name"},
                      {"ph", "M"},
                      {"pid", pid},
                      {"tid", static_cast<int>(TimelineTrack::kCompute)},
                      {"args", {{"name", "compute"}}}});
    merged.push_back({{"name", "thread_name"},
                      {"ph", "M"},
                      {"pid", pid},
                      {"tid", static_cast<int>(TimelineTrack::kCommunication)},
                      {"args", {{"name", "communication"}}}});
    for (auto& e : nlohmann::json::parse(all[r])) merged.push_back(std::move(e));
  }
  std::ofstream out(path);
  DPT_CHECK_KIND(ErrorKind::kIo, out.good(), "cannot write timeline ", path);
  out << nlohmann::json{{"traceEvents", merged}, {"displayTimeUnit", "ms"}}.dump() << '\n';
  DPT_CHECK_KIND(ErrorKind::kIo, out.good(), "cannot write timeline ", path);
}

}  // namespace dpt::nn
