// SPDX-License-Identifier: MIT
// Check macros: messages carry the expression, file:line, the caller's words and the rank.
#include <gtest/gtest.h>

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/check.h"
#include "runtime/device.h"
#include "runtime/logging.h"

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
  const std::string m = message_of([] { DPT_CHECK_KIND(ErrorKind::kIo, 2 + 2 == 5, "disk"); });
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

bool is_zero(int status) { return status == 0; }
std::string to_text(int status) { return "code " + std::to_string(status); }
std::string describe_throws(int) { throw std::runtime_error("no memory to describe it"); }

TEST(Check, StatusMacroThrowsWithTheLibrarysWordsTheCallAndTheKind) {
  const std::string m = message_of([] { DPT_CHECK_STATUS(ErrorKind::kCuda, 7, is_zero, to_text); });
  EXPECT_NE(m.find("code 7"), std::string::npos) << m;
  EXPECT_NE(m.find("`7`"), std::string::npos) << m;
  EXPECT_NE(m.find("CUDA error"), std::string::npos) << m;
  EXPECT_NE(m.find("check_test.cpp:"), std::string::npos) << m;
}

TEST(Check, StatusMacroEvaluatesTheCallOnce) {
  int calls = 0;
  auto call = [&] { return ++calls == 1 ? 0 : 9; };  // a second call would fail
  EXPECT_NO_THROW(DPT_CHECK_STATUS(ErrorKind::kComm, call(), is_zero, to_text));
  EXPECT_EQ(calls, 1);
}

// Captures log lines instead of passing them on; puts the previous sink back when it goes.
class LogCapture {
 public:
  LogCapture()
      : previous_(set_log_sink([this](LogLevel level, const std::string& line) {
          levels.push_back(level);
          lines.push_back(line);
        })) {}
  ~LogCapture() { set_log_sink(std::move(previous_)); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  std::vector<LogLevel> levels;
  std::vector<std::string> lines;

 private:
  std::function<void(LogLevel, const std::string&)> previous_;
};

TEST(Check, StatusLogVariantWarnsWithTheSameTextAndGoesOn) {
  LogCapture capture;
  set_process_rank(2);
  bool went_on = false;
  EXPECT_NO_THROW({
    DPT_CHECK_STATUS_LOG(ErrorKind::kComm, 5, is_zero, to_text);
    went_on = true;
  });
  set_process_rank(-1);
  EXPECT_TRUE(went_on);
  ASSERT_EQ(capture.lines.size(), 1u);
  EXPECT_EQ(capture.levels[0], LogLevel::kWarning);
  const std::string& m = capture.lines[0];
  EXPECT_NE(m.find("code 5"), std::string::npos) << m;
  EXPECT_NE(m.find("`5`"), std::string::npos) << m;
  EXPECT_NE(m.find("communication error"), std::string::npos) << m;
  EXPECT_NE(m.find("check_test.cpp:"), std::string::npos) << m;
  EXPECT_NE(m.find("rank 2"), std::string::npos) << m;
}

TEST(Check, StatusLogVariantIsQuietOnSuccess) {
  LogCapture capture;
  DPT_CHECK_STATUS_LOG(ErrorKind::kCuda, 0, is_zero, to_text);
  EXPECT_TRUE(capture.lines.empty());
}

// A destructor calls the _LOG variant: even a description that throws must not get out.
TEST(Check, StatusLogVariantNeverThrowsEvenWhenDescribingFails) {
  LogCapture capture;
  auto in_destructor = []() noexcept {
    DPT_CHECK_STATUS_LOG(ErrorKind::kIo, 3, is_zero, describe_throws);
  };
  in_destructor();  // std::terminate (a crash of this test) if anything escaped
  EXPECT_TRUE(capture.lines.empty());
}

// DPT_FAIL calls a [[noreturn]] function: this compiles under -Werror=return-type only because
// the compiler knows nothing follows it.
int fail_without_return(int x) {
  if (x > 0) return x;
  DPT_FAIL("fail_without_return: expected a positive number, got ", x);
}

TEST(Check, FailThrowsTheMessageWithFileAndLineButNoExpression) {
  EXPECT_EQ(fail_without_return(2), 2);
  try {
    fail_without_return(-4);
    FAIL() << "DPT_FAIL returned";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument);
    EXPECT_EQ(e.message(), "fail_without_return: expected a positive number, got -4");
    EXPECT_NE(m.find("[invalid argument error at "), std::string::npos) << m;
    EXPECT_NE(m.find("check_test.cpp:"), std::string::npos) << m;
    EXPECT_EQ(m.find('`'), std::string::npos) << m;  // no "`false`" as with DPT_CHECK(false, ...)
  }
}

TEST(Check, FailKindKeepsTheKindAndTheRank) {
  set_process_rank(1);
  try {
    DPT_FAIL_KIND(ErrorKind::kIo, "f.h5: ", "truncated");
  } catch (const Error& e) {
    set_process_rank(-1);
    EXPECT_EQ(e.kind(), ErrorKind::kIo);
    EXPECT_EQ(e.message(), "f.h5: truncated");
    EXPECT_NE(std::string(e.what()).find("I/O error at "), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("rank 1"), std::string::npos) << e.what();
    return;
  }
  set_process_rank(-1);
  FAIL() << "DPT_FAIL_KIND returned";
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
