// SPDX-License-Identifier: MIT
// Where a tensor lives and where an op runs.
#pragma once

#include <string>
#include <string_view>

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
// is visible, the CPU otherwise. Asking for CUDA where it is missing is a kCuda error that says
// what CUDA reported and "use --device cpu".
Device resolve_device(std::string_view spec);

// The GPU of one rank: cuda:(local_rank % device count) for "cuda"/"auto", the named one for
// "cuda:N" (explicit_index). Ranks sharing a GPU (more ranks on a node than GPUs, or several
// ranks given one cuda:N) are refused unless allow_shared.
// CPU devices are returned unchanged.
Device device_for_local_rank(const Device& requested, bool explicit_index, int local_rank,
                             int local_size, bool allow_shared);
// The same from a --device spec: resolve_device(spec), explicit when the spec names an index.
Device device_for_local_rank(std::string_view spec, int local_rank, int local_size,
                             bool allow_shared);

// "cpu", or "cuda:1 (NVIDIA H100 80GB HBM3, compute capability 9.0, 79.1 GiB)".
std::string describe(const Device& device);

// Makes `device` current for this thread when it is a GPU (cudaSetDevice); nothing for the CPU.
void activate_device(const Device& device);

// Why no CUDA device can be used, in CUDA's words ("" when one can).
std::string cuda_unavailable_reason();

// True when this binary was built with the CUDA backend (DPT_CUDA=ON or AUTO with a toolkit).
bool cuda_built();
// Number of visible CUDA devices; 0 without CUDA support or without a GPU.
int cuda_device_count();

}  // namespace dpt
