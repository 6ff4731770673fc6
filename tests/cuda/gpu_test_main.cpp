// SPDX-License-Identifier: MIT
// GoogleTest main of the single-process GPU suites (label gpu): without a usable CUDA device the
// whole binary is skipped with exit status 77 (CTest's SKIP_RETURN_CODE), so a machine without a
// GPU reports these suites as skipped, never as passed. Otherwise as tests/testing/test_main.cpp:
// warnings logged during a test fail it.
#include <gtest/gtest.h>

#include <iostream>

#include "runtime/device.h"
#include "runtime/logging.h"
#include "gpu_test_util.h"
#include "testing/test_util.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (dpt::cuda_device_count() == 0) {
    std::cout << dpt::test::no_gpu_message() << std::endl;
    return dpt::test::kSkipReturnCode;
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
