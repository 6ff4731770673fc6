// SPDX-License-Identifier: MIT
// Whether a GPU suite (label gpu) runs, is skipped or fails, from what probing the GPUs found. A
// skip (exit 77, CTest's SKIP_RETURN_CODE) is only for a machine without a GPU: no driver library
// or no device. Any other CUDA error (too old a driver, the system not ready, a fabric manager not
// running) fails the suite with CUDA's words, so a broken GPU node never reports success; and
// DPT_REQUIRE_GPU=1 turns every skip into a failure (GPU runners set it).
#pragma once

#include <string>

#include "runtime/device.h"

namespace dpt::test {

// What a GPU suite's main returns when it cannot run here; CTest reports the test as skipped.
inline constexpr int kSkipReturnCode = 77;
// What it returns when it must not pass.
inline constexpr int kGpuFailureReturnCode = 1;

enum class GpuSuiteVerdict { kRun, kSkip, kFail };

struct GpuSuiteDecision {
  GpuSuiteVerdict verdict = GpuSuiteVerdict::kRun;
  std::string message;  // one line: "SKIPPED: ..." or "FAILED: ..."; "" for kRun
};

// From a probe (runtime/device.h) and DPT_REQUIRE_GPU.
GpuSuiteDecision gpu_suite_decision(const GpuProbe& probe, bool require_gpu);
// A GPU machine that cannot run this suite's ranks (e.g. fewer GPUs than ranks): `why`, skipped,
// or failed under DPT_REQUIRE_GPU=1.
GpuSuiteDecision gpu_suite_cannot_run(const std::string& why, bool require_gpu);
// DPT_REQUIRE_GPU set to anything but "" or "0".
bool require_gpu_from_environment();
// The exit status for a decision that is not kRun.
int exit_status(const GpuSuiteDecision& decision);

}  // namespace dpt::test
