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
// is visible, the CPU otherwise. Asking for CUDA where it is missing is an error that says why.
Device resolve_device(std::string_view spec);

// True when this binary was built with the CUDA backend (DPT_CUDA=ON or AUTO with a toolkit).
bool cuda_built();
// Number of visible CUDA devices; 0 without CUDA support or without a GPU.
int cuda_device_count();

}  // namespace dpt
