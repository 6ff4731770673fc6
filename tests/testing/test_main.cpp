// SPDX-License-Identifier: MIT
// GoogleTest main shared by every test binary: warnings logged during a test fail it
// (a warning means something the test did not expect).
#include <gtest/gtest.h>

#include "runtime/logging.h"
#include "testing/test_util.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  dpt::set_log_sink([](dpt::LogLevel level, const std::string& message) {
    if (level >= dpt::LogLevel::kWarning && !dpt::test::warnings_allowed()) {
      ADD_FAILURE() << "unexpected log warning: " << message;
    }
  });
  return RUN_ALL_TESTS();
}
