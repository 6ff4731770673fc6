// SPDX-License-Identifier: MIT
#include "testing/gpu_suite.h"

#include <cstdlib>
#include <string_view>

namespace dpt::test {

GpuSuiteDecision gpu_suite_cannot_run(const std::string& why, bool require_gpu) {
  if (require_gpu) {
    return {GpuSuiteVerdict::kFail, "FAILED: " + why + " (DPT_REQUIRE_GPU=1: a skip is a failure)"};
  }
  return {GpuSuiteVerdict::kSkip, "SKIPPED: " + why};
}

GpuSuiteDecision gpu_suite_decision(const GpuProbe& probe, bool require_gpu) {
  switch (probe.status) {
    case GpuProbeStatus::kAvailable:
      return {};
    case GpuProbeStatus::kNotBuilt:
    case GpuProbeStatus::kNoDriver:
    case GpuProbeStatus::kNoDevice:
      return gpu_suite_cannot_run("no GPU here (" + probe.reason +
                                      "); run this suite on a GPU machine: ctest -L gpu",
                                  require_gpu);
    case GpuProbeStatus::kError:
      break;
  }
  return {GpuSuiteVerdict::kFail,
          "FAILED: this machine has a CUDA driver but CUDA cannot use its GPUs: " + probe.reason +
              " (a broken GPU node is a failure, not a skip)"};
}

bool require_gpu_from_environment() {
  const char* value = std::getenv("DPT_REQUIRE_GPU");
  return value != nullptr && std::string_view(value) != "" && std::string_view(value) != "0";
}

int exit_status(const GpuSuiteDecision& decision) {
  return decision.verdict == GpuSuiteVerdict::kSkip ? kSkipReturnCode : kGpuFailureReturnCode;
}

}  // namespace dpt::test
