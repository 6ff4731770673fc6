// SPDX-License-Identifier: MIT
#include "nn/train/timeline_writer.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <string>
#include <vector>
#include <nlohmann/json.hpp>

#include "runtime/check.h"

namespace dpt::nn {
namespace {

// Note [Rank imbalance in the timeline]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// A data-parallel step ends at the pace of its slowest rank: the others wait for its buckets. The
// wait is visible as "wait for all-reduce", but not who caused it. Per step and rank, the compute
// time is from the end of the step's data wait to the start of its wait for the all-reduces
// (forward, loss and backward: the work that differs between ranks). Durations within one rank
// need no clock shared between nodes. Each step span gets args compute_ms, slowest_rank and
// behind_slowest_ms (how much less this rank computed than the slowest), and each rank a counter
// track "compute ms" with one value per step, so the imbalance reads off the trace directly.
struct StepCompute {
  nlohmann::json* span = nullptr;
  double start_us = 0.0;
  double compute_ms = 0.0;
};

// One pass over a rank's events in recording order: a step's data wait and its wait for the
// all-reduces are recorded before the step's own span (the trainer adds that span last), so the
// latest of each, if inside the step's span, belong to it.
std::map<std::string, StepCompute> step_compute(nlohmann::json& events) {
  std::map<std::string, StepCompute> steps;
  double data_end = -1.0, wait_start = -1.0;
  for (auto& e : events) {
    if (e.at("tid") != static_cast<int>(TimelineTrack::kCompute)) continue;
    const double ts = e.at("ts");
    if (e.at("cat") == "data") data_end = ts + e.at("dur").get<double>();
    if (e.at("name") == "wait for all-reduce") wait_start = ts;
    if (e.at("cat") != "step") continue;
    const double begin = ts, end = begin + e.at("dur").get<double>();
    const bool waited = wait_start >= begin && wait_start <= end;
    // A step without a reduction has nothing to compare.
    if (waited) {
      const double compute_from = data_end >= begin && data_end <= end ? data_end : begin;
      steps[e.at("name").get<std::string>()] =
          StepCompute{&e, begin, std::max(0.0, wait_start - compute_from) / 1000.0};
    }
    data_end = wait_start = -1.0;
  }
  return steps;
}

void mark_imbalance(std::vector<nlohmann::json>& per_rank) {
  std::vector<std::map<std::string, StepCompute>> steps;
  steps.reserve(per_rank.size());
  for (auto& events : per_rank) steps.push_back(step_compute(events));
  // Appended after the loop: pushing into a rank's events would move the spans `steps` points to.
  std::vector<std::vector<nlohmann::json>> counters(per_rank.size());
  for (std::size_t r = 0; r < steps.size(); ++r) {
    for (auto& [name, mine] : steps[r]) {
      int slowest = static_cast<int>(r);
      double slowest_ms = mine.compute_ms;
      for (std::size_t q = 0; q < steps.size(); ++q) {
        const auto it = steps[q].find(name);
        if (it != steps[q].end() && it->second.compute_ms > slowest_ms) {
          slowest = static_cast<int>(q);
          slowest_ms = it->second.compute_ms;
        }
      }
      (*mine.span)["args"] = {{"compute_ms", mine.compute_ms},
                              {"slowest_rank", slowest},
                              {"behind_slowest_ms", slowest_ms - mine.compute_ms}};
      counters[r].push_back({{"name", "compute ms"},
                             {"ph", "C"},
                             {"pid", static_cast<int>(r)},
                             {"ts", mine.start_us},
                             {"args", {{"compute", mine.compute_ms}}}});
    }
  }
  for (std::size_t r = 0; r < per_rank.size(); ++r) {
    for (auto& c : counters[r]) per_rank[r].push_back(std::move(c));
  }
}

}  // namespace

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
  std::vector<nlohmann::json> per_rank;
  per_rank.reserve(all.size());
  for (const std::string& text : all) per_rank.push_back(nlohmann::json::parse(text));
  mark_imbalance(per_rank);
  nlohmann::json merged = nlohmann::json::array();
  for (std::size_t r = 0; r < per_rank.size(); ++r) {
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
    for (auto& e : per_rank[r]) merged.push_back(std::move(e));
  }
  std::ofstream out(path);
  DPT_CHECK_KIND(ErrorKind::kIo, out.good(), "cannot write timeline ", path);
  out << nlohmann::json{{"traceEvents", merged}, {"displayTimeUnit", "ms"}}.dump() << '\n';
  DPT_CHECK_KIND(ErrorKind::kIo, out.good(), "cannot write timeline ", path);
}

}  // namespace dpt::nn
