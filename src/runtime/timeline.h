// SPDX-License-Identifier: MIT
// A per-rank timeline of spans (layer forward/backward, gradient all-reduces, optimizer, data
// wait, checkpoint writes) for `train --timeline`: recorded here on the training thread, merged
// into one Chrome trace file by rank 0 (src/nn/train/timeline_writer.h).
#pragma once

#include <string>
#include <vector>

namespace dpt {

// Tracks of one rank in the trace.
enum class TimelineTrack { kCompute = 0, kCommunication = 1 };

struct TimelineSpan {
  std::string name;
  std::string category;  // forward | backward | allreduce | optimizer | data | checkpoint | step
  double start_s = 0.0;  // steady-clock seconds (the clock of steady_now_seconds())
  double end_s = 0.0;
  TimelineTrack track = TimelineTrack::kCompute;
};

class Timeline {
 public:
  // Spans before `origin_s` are clipped to it; times in the file are relative to it.
  explicit Timeline(double origin_s) : origin_s_(origin_s) {}
  // Recording is switched off outside the steps being traced, so long runs stay small.
  bool recording() const { return recording_; }
  void set_recording(bool on) { recording_ = on; }
  void add(std::string name, std::string category, double start_s, double end_s,
           TimelineTrack track = TimelineTrack::kCompute);
  double origin_s() const { return origin_s_; }
  const std::vector<TimelineSpan>& spans() const { return spans_; }

 private:
  double origin_s_;
  bool recording_ = true;
  std::vector<TimelineSpan> spans_;
};

// Steady-clock seconds (CLOCK_MONOTONIC: one clock for every process of a node).
double steady_now_seconds();

// Records [construction, destruction) as one span when `timeline` is recording; a null timeline
// costs one branch.
class TimelineScope {
 public:
  TimelineScope(Timeline* timeline, const char* category, std::string name)
      : timeline_(timeline != nullptr && timeline->recording() ? timeline : nullptr),
        category_(category),
        name_(timeline_ != nullptr ? std::move(name) : std::string()),
        start_s_(timeline_ != nullptr ? steady_now_seconds() : 0.0) {}
  ~TimelineScope() {
    if (timeline_ != nullptr)
      timeline_->add(std::move(name_), category_, start_s_, steady_now_seconds());
  }
  TimelineScope(const TimelineScope&) = delete;
  TimelineScope& operator=(const TimelineScope&) = delete;

 private:
  Timeline* timeline_;
  const char* category_;
  std::string name_;
  double start_s_;
};

}  // namespace dpt
