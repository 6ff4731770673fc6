// SPDX-License-Identifier: MIT
// FlightRecorder: sequence numbers, the in-flight collective and the idle state the watchdog
// reports, descriptions, and the ring keeping only the newest entries.
#include "comm/flight_recorder.h"

#include <gtest/gtest.h>

namespace dpt::comm {
namespace {

TEST(FlightRecorder, TracksInFlightAndLastFinished) {
  FlightRecorder recorder(4);
  EXPECT_EQ(recorder.status().in_flight, 0);
  EXPECT_EQ(recorder.status().last_finished, 0);
  const std::int64_t a =
      recorder.queued(CollectiveKind::kAllReduce, 1024, 4, {"gradient bucket", 2, 40});
  const std::int64_t b = recorder.queued(CollectiveKind::kBarrier, 0, 0, {});
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, 2);
  EXPECT_EQ(recorder.status().in_flight, 0);  // queued, not started
  recorder.started(a);
  FlightRecorder::Status s = recorder.status();
  EXPECT_EQ(s.in_flight, a);
  EXPECT_EQ(s.in_flight_text, "all-reduce of 1024 floats (gradient bucket 2, step 40)");
  recorder.finished(a, false);
  recorder.started(b);
  recorder.finished(b, true);
  s = recorder.status();
  EXPECT_EQ(s.in_flight, 0);
  EXPECT_EQ(s.last_finished, b);
  EXPECT_EQ(s.last_finished_text, "barrier");
  EXPECT_EQ(s.queued, 2);
  const std::string dump = recorder.dump(10);
  EXPECT_NE(dump.find("#1 all-reduce of 1024 floats (gradient bucket 2, step 40): started"),
            std::string::npos)
      << dump;
  EXPECT_NE(dump.find("#2 barrier: started"), std::string::npos) << dump;
  EXPECT_NE(dump.find("FAILED"), std::string::npos) << dump;
}

TEST(FlightRecorder, KeepsTheNewestEntries) {
  FlightRecorder recorder(3);
  for (int i = 0; i < 5; ++i) {
    const std::int64_t seq = recorder.queued(CollectiveKind::kBroadcast, i + 1, 1, {"x", -1, i});
    recorder.started(seq);
    recorder.finished(seq, false);
  }
  const std::string dump = recorder.dump(10);
  EXPECT_EQ(dump.find("#2 "), std::string::npos) << dump;
  EXPECT_NE(dump.find("#3 broadcast of 3 bytes (x, step 2)"), std::string::npos) << dump;
  EXPECT_NE(dump.find("#5 broadcast of 5 bytes (x, step 4)"), std::string::npos) << dump;
  const std::string last_two = recorder.dump(2);
  EXPECT_EQ(last_two.find("#3 "), std::string::npos) << last_two;
  EXPECT_NE(last_two.find("#4 "), std::string::npos) << last_two;
}

}  // namespace
}  // namespace dpt::comm
