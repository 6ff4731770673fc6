// SPDX-License-Identifier: MIT
// Check macros: messages carry the expression, file:line, the caller's words and the rank.
#include <gtest/gtest.h>

#include "runtime/check.h"
#include "runtime/device.h"

namespace dpt {
namespace {

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Check, MessageNamesExpressionFileAndValues) {
  const int got = 3;
  const std::string m = message_of([&] { DPT_CHECK(got == 4, "expected 4, found ", got); });
  EXPECT_NE(m.find("expected 4, found 3"), std::string::npos) << m;
  EXPECT_NE(m.find("got == 4"), std::string::npos) << m;
  EXPECT_NE(m.find("check_test.cpp:"), std::string::npos) << m;
  EXPECT_NE(m.find("invalid argument"), std::string::npos) << m;
}

TEST(Check, RankAppearsOnceSet) {
  set_process_rank(3);
  const std::string m = message_of([] { DPT_CHECK_KIND(ErrorKind::kIo, false, "disk"); });
  set_process_rank(-1);
  EXPECT_NE(m.find("rank 3"), std::string::npos) << m;
  EXPECT_NE(m.find("I/O error"), std::string::npos) << m;
}

TEST(Check, KindIsKept) {
  try {
    DPT_CHECK_KIND(ErrorKind::kComm, 1 + 1 == 3, "peer");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kComm);
  }
  EXPECT_NO_THROW(DPT_CHECK(true, "never"));
}

TEST(Check, StatusMacroReportsTheStatusText) {
  auto to_text = [](int code) { return "code " + std::to_string(code); };
  const std::string m = message_of([&] { DPT_CHECK_STATUS(7, 0, to_text, ErrorKind::kCuda); });
  EXPECT_NE(m.find("code 7"), std::string::npos) << m;
  EXPECT_NE(m.find("CUDA error"), std::string::npos) << m;
}

TEST(Device, ResolvesSpecsAndRejectsNonsense) {
  EXPECT_EQ(resolve_device("cpu"), Device::cpu());
  EXPECT_EQ(resolve_device("auto"), Device::cpu());  // until the CUDA kernels exist
  const std::string m = message_of([] { resolve_device("cuda"); });
  EXPECT_NE(m.find("'cuda'"), std::string::npos) << m;
  EXPECT_NE(message_of([] { resolve_device("tpu"); }).find("expected auto, cpu"), std::string::npos);
  EXPECT_NE(message_of([] { resolve_device("cuda:x"); }).find("cuda:N"), std::string::npos);
}

}  // namespace
}  // namespace dpt
