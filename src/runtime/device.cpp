// SPDX-License-Identifier: MIT
// Device names, the resolution of --device specs against what this build and machine have, and the
// shared-GPU check over every rank's placement. The GPU side is runtime/gpu_backend.h.
#include "runtime/device.h"

#include <charconv>
#include <cstdlib>
#include <map>
#include <utility>

#include "runtime/check.h"
#include "runtime/gpu_backend.h"

namespace dpt {

std::string to_string(const Device& device) {
  if (device.type == DeviceType::kCpu) return "cpu";
  return "cuda:" + std::to_string(device.index);
}

std::string_view to_string(GpuProbeStatus status) {
  switch (status) {
    case GpuProbeStatus::kAvailable: return "available";
    case GpuProbeStatus::kNotBuilt: return "not built";
    case GpuProbeStatus::kNoDriver: return "no driver";
    case GpuProbeStatus::kNoDevice: return "no device";
    case GpuProbeStatus::kError: return "error";
  }
  return "?";
}

bool cuda_built() { return gpu_backend::built(); }

GpuProbe probe_gpus() { return gpu_backend::probe(); }

int cuda_device_count() {
  const GpuProbe probe = probe_gpus();
  return probe.status == GpuProbeStatus::kAvailable ? probe.count : 0;
}

std::string cuda_unavailable_reason() { return probe_gpus().reason; }

namespace {

// The one "no usable GPU" error: what CUDA (or the build) says, and the way out.
void require_gpus(const GpuProbe& probe, std::string_view spec) {
  DPT_CHECK_KIND(ErrorKind::kCuda, probe.status == GpuProbeStatus::kAvailable, "device '", spec,
                 "': no usable GPU (", probe.reason, "); use --device cpu");
}

}  // namespace

Device resolve_device(std::string_view spec) {
  if (spec == "cpu") return Device::cpu();
  if (spec == "auto") {
    const GpuProbe probe = probe_gpus();
    // A GPU that is there but fails is not "no GPU": say so rather than train on the CPU.
    if (probe.status == GpuProbeStatus::kError) require_gpus(probe, spec);
    return probe.status == GpuProbeStatus::kAvailable ? Device::cuda(0) : Device::cpu();
  }
  if (spec.starts_with("cuda")) {
    int index = 0;
    if (spec.size() > 4) {
      DPT_CHECK(spec[4] == ':', "device: expected cuda or cuda:N, got '", spec, "'");
      const auto digits = spec.substr(5);
      const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
      DPT_CHECK(ec == std::errc() && end == digits.data() + digits.size() && index >= 0,
                "device: expected cuda:N with N >= 0, got '", spec, "'");
    }
    const GpuProbe probe = probe_gpus();
    require_gpus(probe, spec);
    DPT_CHECK_KIND(ErrorKind::kCuda, index < probe.count, "device '", spec, "': only ", probe.count,
                   " CUDA device(s) visible (CUDA_VISIBLE_DEVICES='",
                   std::getenv("CUDA_VISIBLE_DEVICES") ? std::getenv("CUDA_VISIBLE_DEVICES") : "",
                   "'); use --device cpu or a smaller index");
    return Device::cuda(index);
  }
  DPT_FAIL("device: expected auto, cpu, cuda or cuda:N, got '", spec, "'");
}

std::string describe(const Device& device) {
  if (device.type != DeviceType::kCuda) return to_string(device);
  return to_string(device) + " (" + gpu_backend::describe_device(device.index) + ")";
}

void activate_device(const Device& device) {
  if (device.type != DeviceType::kCuda) return;
  gpu_backend::set_current_device(device.index);
}

std::string gpu_identity(const Device& device) {
  if (device.type != DeviceType::kCuda) return "";
  return gpu_backend::gpu_identity(device.index);
}

Device device_for_local_rank(const Device& requested, bool explicit_index, int local_rank) {
  if (requested.type != DeviceType::kCuda || explicit_index) return requested;
  const GpuProbe probe = probe_gpus();
  require_gpus(probe, "cuda");
  return Device::cuda(local_rank % probe.count);
}

Device device_for_local_rank(std::string_view spec, int local_rank) {
  return device_for_local_rank(resolve_device(spec), spec.find(':') != std::string_view::npos,
                               local_rank);
}

std::string shared_gpu_error(const std::vector<GpuPlacement>& placements) {
  // (host, gpu) -> the first rank seen on it.
  std::map<std::pair<std::string, std::string>, std::size_t> first_user;
  for (std::size_t r = 0; r < placements.size(); ++r) {
    const GpuPlacement& p = placements[r];
    if (p.gpu.empty()) continue;  // on the CPU
    const auto [it, inserted] = first_user.emplace(std::make_pair(p.host, p.gpu), r);
    if (inserted) continue;
    const GpuPlacement& other = placements[it->second];
    return detail::str(
        "ranks ", it->second, " (", other.device, ") and ", r, " (", p.device, ") on node ",
        p.host, " would both use GPU ", p.gpu,
        ": NCCL needs a GPU of its own for every rank (it cannot run two ranks of one job on one "
        "GPU); start at most one rank per GPU (mpirun -np <GPUs per node> per node, SLURM "
        "--gpus-per-task=1 or --ntasks-per-node=<GPUs>), give each rank its own GPU with --device "
        "cuda (local rank % visible GPUs) or CUDA_VISIBLE_DEVICES, or train with --device cpu");
  }
  return "";
}

}  // namespace dpt
