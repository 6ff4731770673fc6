// SPDX-License-Identifier: MIT
// Element types of tensors, with bfloat16 conversions shared by host and device code.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

#include "runtime/host_device.h"

namespace dpt {

enum class DType : std::uint8_t { kF32, kBF16, kI32, kU8 };

constexpr std::size_t size_of(DType dtype) {
  switch (dtype) {
    case DType::kF32: return 4;
    case DType::kBF16: return 2;
    case DType::kI32: return 4;
    case DType::kU8: return 1;
  }
  return 0;
}

constexpr std::string_view to_string(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "f32";
    case DType::kBF16: return "bf16";
    case DType::kI32: return "i32";
    case DType::kU8: return "u8";
  }
  return "?";
}

// bfloat16 stored as its bit pattern; conversion rounds to nearest even, NaN stays NaN.
struct BFloat16 {
  std::uint16_t bits = 0;
};

DPT_HOST_DEVICE BFloat16 to_bf16(float value) {
  std::uint32_t u = 0;
  std::memcpy(&u, &value, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return BFloat16{static_cast<std::uint16_t>((u >> 16) | 0x40u)};
  const std::uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
  return BFloat16{static_cast<std::uint16_t>((u + rounding) >> 16)};
}

DPT_HOST_DEVICE float to_float(BFloat16 value) {
  const std::uint32_t u = static_cast<std::uint32_t>(value.bits) << 16;
  float f = 0.0f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

template <typename T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::kF32; }
template <> constexpr DType dtype_of<BFloat16>() { return DType::kBF16; }
template <> constexpr DType dtype_of<std::int32_t>() { return DType::kI32; }
template <> constexpr DType dtype_of<std::uint8_t>() { return DType::kU8; }

}  // namespace dpt
