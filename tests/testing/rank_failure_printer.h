// SPDX-License-Identifier: MIT
// The GoogleTest printer of ranks other than 0 in multi-rank suites: silent unless something
// fails, then the failure and the test name, prefixed by the rank.
#pragma once

#include <gtest/gtest.h>

#include <iostream>

namespace dpt::test {

class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::cout << "[rank " << rank_ << "] " << (result.file_name() ? result.file_name() : "?") << ':'
              << result.line_number() << ": failure\n"
              << result.message() << std::endl;
  }
  void OnTestEnd(const ::testing::TestInfo& info) override {
    if (info.result()->Failed()) {
      std::cout << "[rank " << rank_ << "] FAILED " << info.test_suite_name() << '.' << info.name()
                << std::endl;
    }
  }

 private:
  int rank_;
};

}  // namespace dpt::test
