// SPDX-License-Identifier: MIT
// Device names and the resolution of --device specs against what this build and machine have.
#include "runtime/device.h"

#include <charconv>

#include "runtime/check.h"
#include "runtime/config.h"

#if DPT_HAVE_CUDA
#include "runtime/cuda/cuda_device.h"
#endif

namespace dpt {

std::string to_string(const Device& device) {
  if (device.type == DeviceType::kCpu) return "cpu";
  return "cuda:" + std::to_string(device.index);
}

bool cuda_built() { return DPT_HAVE_CUDA != 0; }

int cuda_device_count() {
#if DPT_HAVE_CUDA
  return cuda::device_count();
#else
  return 0;
#endif
}

Device resolve_device(std::string_view spec) {
  if (spec == "cpu") return Device::cpu();
  // TODO(dpt): pick cuda:0 when a GPU is visible once the CUDA kernels exist; until then "auto"
  // means the CPU so that a run on a GPU machine works instead of stopping.
  if (spec == "auto") return Device::cpu();
  if (spec.starts_with("cuda")) {
    int index = 0;
    if (spec.size() > 4) {
      DPT_CHECK(spec[4] == ':', "device: expected cuda or cuda:N, got '", spec, "'");
      const auto digits = spec.substr(5);
      const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
      DPT_CHECK(ec == std::errc() && end == digits.data() + digits.size() && index >= 0,
                "device: expected cuda:N with N >= 0, got '", spec, "'");
    }
    DPT_CHECK(cuda_built(), "device '", spec,
              "': this build has no CUDA backend (configure with -DDPT_CUDA=ON)");
    const int count = cuda_device_count();
    DPT_CHECK(index < count, "device '", spec, "': ", count, " CUDA device(s) visible");
    // The CUDA kernels are not part of this release yet; refuse rather than fail mid-step.
    DPT_CHECK(false, "device '", spec, "': the CUDA kernels are not implemented yet; use --device cpu");
  }
  DPT_CHECK(false, "device: expected auto, cpu, cuda or cuda:N, got '", spec, "'");
  return Device::cpu();  // unreachable
}

}  // namespace dpt
