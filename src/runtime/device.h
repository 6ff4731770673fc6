// SPDX-License-Identifier: MIT
// Where a tensor lives and where an op runs.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace dpt {

enum class DeviceType { kCpu, kCuda };

struct Device {
  DeviceType type = DeviceType::kCpu;
  int index = 0;

  static Device cpu() { return Device{DeviceType::kCpu, 0}; }
  static Device cuda(int index) { return Device{DeviceType::kCuda, index}; }
  bool operator==(const Device&) const = default;
};

std::string to_string(const Device& device);

// Resolves "auto" | "cpu" | "cuda" | "cuda:N". "auto" picks CUDA when this build has it and a GPU
// is visible, the CPU where there is no GPU (no driver, no device, a CPU-only build); a GPU
// machine whose CUDA fails otherwise (probe status kError) is a kCuda error for "auto" too, so a
// broken driver never trains on the CPU unnoticed. Asking for CUDA where it is missing is a kCuda
// error that says what CUDA reported and "use --device cpu".
Device resolve_device(std::string_view spec);

// The GPU of one rank: cuda:(local_rank % visible device count) for "cuda"/"auto", the named one
// for "cuda:N" (explicit_index). Whether two ranks would then share one physical GPU depends on
// what each rank sees (CUDA_VISIBLE_DEVICES per rank, SLURM --gpus-per-task=1): that is decided
// by shared_gpu_error() over every rank's GpuPlacement, not here. CPU devices are returned
// unchanged.
Device device_for_local_rank(const Device& requested, bool explicit_index, int local_rank);
// The same from a --device spec: resolve_device(spec), explicit when the spec names an index.
Device device_for_local_rank(std::string_view spec, int local_rank);

// Where one rank computes: its node and the physical GPU behind its device (gpu_identity()).
struct GpuPlacement {
  std::string host;
  std::string gpu;     // gpu_identity() of the device, or "" for a rank on the CPU
  std::string device;  // as this rank names it ("cuda:0"), for messages
};
// "" when no two ranks on one node use the same physical GPU; otherwise the error to stop with,
// naming both ranks, the node and the GPU. Two ranks on one GPU cannot work under NCCL (it refuses
// a communicator with a duplicate GPU), so there is no option to allow it. placements[r] is rank r.
std::string shared_gpu_error(const std::vector<GpuPlacement>& placements);
// The physical GPU behind `device` for this process ("GPU-<uuid> (PCI 0000:3b:00.0)"): the same
// string on every rank that uses that GPU, whatever CUDA_VISIBLE_DEVICES numbers it as.
std::string gpu_identity(const Device& device);

// "cpu", or "cuda:1 (NVIDIA H100 80GB HBM3, compute capability 9.0, 79.1 GiB)".
std::string describe(const Device& device);

// Makes `device` current for this thread when it is a GPU (cudaSetDevice); nothing for the CPU.
void activate_device(const Device& device);

// What looking for GPUs found. Only kNoDriver and kNoDevice mean "this machine has no GPU"; kError
// is a GPU machine that cannot be used (too old a driver for this CUDA runtime, the system not
// ready, e.g. a fabric manager not running): callers report it, they never take it for "no GPU".
enum class GpuProbeStatus {
  kAvailable,  // count > 0
  kNotBuilt,   // this binary has no CUDA backend
  kNoDriver,   // the CUDA driver library (libcuda.so.1) cannot be loaded, or is the toolkit's stub
  kNoDevice,   // cudaErrorNoDevice, or zero devices (e.g. CUDA_VISIBLE_DEVICES=-1)
  kError,      // any other CUDA error
};
struct GpuProbe {
  GpuProbeStatus status = GpuProbeStatus::kNotBuilt;
  int count = 0;
  std::string reason;  // CUDA's words ("cudaErrorInsufficientDriver: ..."); "" when kAvailable
};
GpuProbe probe_gpus();
std::string_view to_string(GpuProbeStatus status);

// Why no CUDA device can be used, in CUDA's words ("" when one can).
std::string cuda_unavailable_reason();

// True when this binary was built with the CUDA backend (DPT_CUDA=ON or AUTO with a toolkit).
bool cuda_built();
// Number of visible CUDA devices; 0 without CUDA support or without a GPU (any probe status but
// kAvailable).
int cuda_device_count();

}  // namespace dpt
