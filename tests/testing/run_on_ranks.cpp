// SPDX-License-Identifier: MIT
#include "testing/run_on_ranks.h"

#include <gtest/gtest.h>

#include <iostream>
#include <string>

#include "runtime/logging.h"
#include "testing/test_util.h"

namespace dpt::test {
namespace {

// Replaces GoogleTest's printer on ranks other than 0: silent unless something fails, then the
// failure and the test name, prefixed by the rank.
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

}  // namespace

int run_all_tests_on_ranks(dpt::comm::Communicator& comm) {
  if (comm.rank() != 0) {
    ::testing::TestEventListeners& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter(comm.rank()));
  }
  dpt::set_log_sink([](dpt::LogLevel level, const std::string& message) {
    if (level >= dpt::LogLevel::kWarning && !warnings_allowed()) {
      ADD_FAILURE() << "unexpected log warning: " << message;
    }
  });
  int status = RUN_ALL_TESTS();
  // Every rank returns the job's verdict, not only its own: a rank that passed must not report
  // success for a job where another rank failed. (mpiexec would fail the job anyway when any rank
  // exits non-zero; this also makes each rank's log say so.) A host buffer: with a device
  // communicator the host communicator reduces it.
  double failed = status != 0 ? 1.0 : 0.0;
  comm.all_reduce(&failed, 1, dpt::comm::ReduceOp::kMax);
  if (failed != 0.0 && status == 0) {
    std::cout << "[rank " << comm.rank() << "] another rank failed" << std::endl;
    status = 1;
  }
  dpt::set_log_sink(nullptr);
  return status;
}

}  // namespace dpt::test
