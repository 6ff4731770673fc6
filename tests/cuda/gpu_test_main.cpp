// SPDX-License-Identifier: MIT
// GoogleTest main of the single-process GPU suites (label gpu): on a machine without a GPU (no
// driver library, no device) the whole binary is skipped with exit status 77 (CTest's
// SKIP_RETURN_CODE), never passed; any other CUDA error, or DPT_REQUIRE_GPU=1 without a GPU,
// fails it (testing/gpu_suite.h). Otherwise as tests/testing/test_main.cpp: warnings logged during
// a test fail it.
#include <gtest/gtest.h>

#include <iostream>

#include "runtime/device.h"
#include "runtime/logging.h"
#include "gpu_test_util.h"
#include "testing/test_util.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const dpt::test::GpuSuiteDecision decision = dpt::test::gpu_suite_decision(
      dpt::probe_gpus(), dpt::test::require_gpu_from_environment());
  if (decision.verdict != dpt::test::GpuSuiteVerdict::kRun) {
    std::cout << decision.message << std::endl;
    return dpt::test::exit_status(decision);
  }
  dpt::set_log_sink([](dpt::LogLevel level, const std::string& message) {
    if (level >= dpt::LogLevel::kWarning && !dpt::test::warnings_allowed()) {
      ADD_FAILURE() << "unexpected log warning: " << message;
    }
  });
  const int status = RUN_ALL_TESTS();
  dpt::set_log_sink(nullptr);
  return status;
}
