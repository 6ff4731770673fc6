// SPDX-License-Identifier: MIT
// Device names and the resolution of --device specs against what this build and machine have.
#include "runtime/device.h"

#include <charconv>
#include <cstdlib>

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

std::string cuda_unavailable_reason() {
#if DPT_HAVE_CUDA
  return cuda::no_device_reason();
#else
  return "this binary was built without the CUDA backend (configure with -DDPT_CUDA=ON)";
#endif
}

namespace {

// The one "no GPU" error: what CUDA (or the build) says, and the way out.
void require_gpus(int count, std::string_view spec) {
  DPT_CHECK_KIND(ErrorKind::kCuda, count > 0, "device '", spec, "': no usable GPU (",
                 cuda_unavailable_reason(), "); use --device cpu");
}

}  // namespace

Device resolve_device(std::string_view spec) {
  if (spec == "cpu") return Device::cpu();
  if (spec == "auto") return cuda_device_count() > 0 ? Device::cuda(0) : Device::cpu();
  if (spec.starts_with("cuda")) {
    int index = 0;
    if (spec.size() > 4) {
      DPT_CHECK(spec[4] == ':', "device: expected cuda or cuda:N, got '", spec, "'");
      const auto digits = spec.substr(5);
      const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
      DPT_CHECK(ec == std::errc() && end == digits.data() + digits.size() && index >= 0,
                "device: expected cuda:N with N >= 0, got '", spec, "'");
    }
    const int count = cuda_device_count();
    require_gpus(count, spec);
    DPT_CHECK_KIND(ErrorKind::kCuda, index < count, "device '", spec, "': only ", count,
                   " CUDA device(s) visible (CUDA_VISIBLE_DEVICES='",
                   std::getenv("CUDA_VISIBLE_DEVICES") ? std::getenv("CUDA_VISIBLE_DEVICES") : "",
                   "'); use --device cpu or a smaller index");
    return Device::cuda(index);
  }
  DPT_FAIL("device: expected auto, cpu, cuda or cuda:N, got '", spec, "'");
}

std::string describe(const Device& device) {
  if (device.type != DeviceType::kCuda) return to_string(device);
#if DPT_HAVE_CUDA
  return to_string(device) + " (" + cuda::describe_device(device.index) + ")";
#else
  return to_string(device);
#endif
}

void activate_device(const Device& device) {
  if (device.type != DeviceType::kCuda) return;
#if DPT_HAVE_CUDA
  cuda::set_current_device(device.index);
#else
  DPT_CHECK(false, to_string(device), ": ", cuda_unavailable_reason());
#endif
}

Device device_for_local_rank(const Device& requested, bool explicit_index, int local_rank,
                             int local_size, bool allow_shared) {
  if (requested.type != DeviceType::kCuda) return requested;
  if (explicit_index) {
    DPT_CHECK(allow_shared || local_size <= 1, local_size, " ranks on this node would all use ",
              to_string(requested), " (use --device cuda for one GPU per rank, or pass "
              "--allow-shared-gpu)");
    return requested;
  }
  const int count = cuda_device_count();
  require_gpus(count, "cuda");
  DPT_CHECK(allow_shared || local_size <= count, local_size, " ranks on this node but only ",
            count, " GPU(s) visible: ranks would share a GPU (start at most ", count,
            " ranks per node, or pass --allow-shared-gpu)");
  return Device::cuda(local_rank % count);
}

Device device_for_local_rank(std::string_view spec, int local_rank, int local_size,
                             bool allow_shared) {
  return device_for_local_rank(resolve_device(spec), spec.find(':') != std::string_view::npos,
                               local_rank, local_size, allow_shared);
}

}  // namespace dpt
