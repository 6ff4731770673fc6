// SPDX-License-Identifier: MIT
// DPT_FAULT: parsing (every malformed entry is an error naming it), matching by point, rank and
// step, firing once, and the process-level throw.
#include "runtime/fault.h"

#include <gtest/gtest.h>

#include "runtime/error.h"

namespace dpt {
namespace {

TEST(Fault, ParsesActionsArgumentsAndOptions) {
  const auto list = fault::parse("sleep=2.5@step:rank=1:step=3,exit=7@start,nan@forward:step=0");
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0].action, fault::Action::kSleep);
  EXPECT_DOUBLE_EQ(list[0].seconds, 2.5);
  EXPECT_EQ(list[0].point, "step");
  EXPECT_EQ(list[0].rank, 1);
  EXPECT_EQ(list[0].step, 3);
  EXPECT_EQ(list[1].action, fault::Action::kExit);
  EXPECT_EQ(list[1].exit_code, 7);
  EXPECT_EQ(list[1].rank, -1);
  EXPECT_EQ(list[1].step, -1);
  EXPECT_EQ(list[2].action, fault::Action::kNan);
  EXPECT_EQ(list[2].step, 0);
  EXPECT_LT(fault::parse("sleep@step")[0].seconds, 0.0);  // forever
}

TEST(Fault, MalformedEntriesAreErrorsNamingThem) {
  for (const char* bad :
       {"sleep", "boom@step", "sleep@nowhere", "nan@step", "flip@forward", "sleep=x@step",
        "throw=3@step", "sleep@step:rank=-1", "sleep@step:step=a", "sleep@step:when=3"}) {
    try {
      fault::parse(bad);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(e.message().find("DPT_FAULT entry '"), std::string::npos) << e.message();
      EXPECT_NE(e.message().find(bad), std::string::npos) << e.message();
    }
  }
}

TEST(Fault, FiresOnceAtItsPointRankAndStep) {
  fault::set_for_testing("skip@step:step=2,nan@forward,flip@optimizer:rank=5");
  EXPECT_EQ(fault::at("step", 0), fault::Action::kNone);
  EXPECT_EQ(fault::at("step", 1), fault::Action::kNone);
  EXPECT_EQ(fault::at("step", 2), fault::Action::kSkip);
  EXPECT_EQ(fault::at("step", 2), fault::Action::kNone);    // once
  EXPECT_EQ(fault::at("forward", 7), fault::Action::kNan);  // no step: the first time
  EXPECT_EQ(fault::at("forward", 8), fault::Action::kNone);
  // This process is not distributed (rank -1 counts as rank 0): rank 5's injection never fires.
  EXPECT_EQ(fault::at("optimizer", 0), fault::Action::kNone);
  fault::set_for_testing("");
  EXPECT_EQ(fault::at("step", 2), fault::Action::kNone);
}

TEST(Fault, ThrowIsAnErrorNamingPointAndStep) {
  fault::set_for_testing("throw@loader:step=4");
  EXPECT_EQ(fault::at("loader", 3), fault::Action::kNone);
  try {
    fault::at("loader", 4);
    ADD_FAILURE() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("fault injected by DPT_FAULT at point 'loader', step 4"),
              std::string::npos)
        << e.message();
  }
  fault::set_for_testing("");
}

}  // namespace
}  // namespace dpt
