// SPDX-License-Identifier: MIT
// Element types of tensors, with the bfloat16 and IEEE half conversions shared by host and device
// code (Note [Half-precision conversions]).
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

#include "runtime/host_device.h"

namespace dpt {

enum class DType : std::uint8_t { kF32, kBF16, kF16, kI32, kU8 };

constexpr std::size_t size_of(DType dtype) {
  switch (dtype) {
    case DType::kF32: return 4;
    case DType::kBF16: return 2;
    case DType::kF16:
      return 2;
    case DType::kI32: return 4;
    case DType::kU8: return 1;
  }
  return 0;
}

constexpr std::string_view to_string(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "f32";
    case DType::kBF16: return "bf16";
    case DType::kF16:
      return "f16";
    case DType::kI32: return "i32";
    case DType::kU8: return "u8";
  }
  return "?";
}

// Note [Half-precision conversions]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// float -> bfloat16 / IEEE binary16 rounds to nearest, ties to even, in integer arithmetic on the
// bit pattern: no floating-point operation, so the result does not depend on the rounding mode,
// on flush-to-zero or denormals-are-zero (which libraries may set in MXCSR), on the ISA clone or
// on the device. Inf stays Inf, a float beyond the format's range becomes Inf (binary16: from
// 65520 up, the midpoint above 65504), subnormal results are rounded like any other, and a NaN
// stays a NaN of the same sign, made quiet, with the top bits of its payload: what x86's F16C and
// AVX512_BF16 instructions give. The way back is exact. tests/kernels/cast_test.cpp checks all
// 65536 patterns of each format both ways against a reference that rounds by search instead.

// bfloat16 stored as its bit pattern.
struct BFloat16 {
  std::uint16_t bits = 0;
};

// IEEE 754 binary16 (fp16) stored as its bit pattern.
struct Float16 {
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

namespace half_bits {
// Branch-free selection on 32-bit patterns (loops over to_f16 and its inverse vectorise on the
// CPU only without control flow). All operands are below 2^31.
// All ones when a < b, else 0.
DPT_HOST_DEVICE std::uint32_t mask_if_less(std::uint32_t a, std::uint32_t b) {
  return 0u - ((a - b) >> 31);
}
DPT_HOST_DEVICE std::uint32_t select(std::uint32_t mask, std::uint32_t if_set,
                                     std::uint32_t if_clear) {
  return if_clear ^ ((if_set ^ if_clear) & mask);
}
}  // namespace half_bits

DPT_HOST_DEVICE Float16 to_f16(float value) {
  using half_bits::mask_if_less;
  using half_bits::select;
  std::uint32_t u = 0;
  std::memcpy(&u, &value, sizeof u);
  const std::uint32_t sign = (u >> 16) & 0x8000u;
  const std::uint32_t a = u & 0x7fffffffu;
  // Normal result: rebias the exponent (127 -> 15) and keep 10 of 23 fraction bits; round up
  // when the 13 dropped bits plus the kept value's oddness exceed half (ties to even). A carry
  // moves into the exponent as it should.
  std::uint32_t normal = (a - 0x38000000u) >> 13;
  normal += (0x1000u - ((a & 0x1fffu) + (normal & 1u))) >> 31;
  // Subnormal result (below 2^-14): in units of 2^-24 the value is m * 2^(e - 126), m the 24-bit
  // significand and e the biased exponent, so a right shift by 126 - e rounded the same way;
  // 0x400 (the smallest normal) may come out, correctly. The shift is capped at 31: smaller
  // values (float subnormals included) give 0, and the tie at 2^-25 goes to the even 0.
  std::uint32_t e = a >> 23;
  e = select(mask_if_less(112u, e), 112u, e);  // only 112 and below are used; keeps shifts < 32
  std::uint32_t shift = 126u - e;
  shift = select(mask_if_less(31u, shift), 31u, shift);
  const std::uint32_t m = (a & 0x7fffffu) | 0x800000u;
  std::uint32_t subnormal = m >> shift;
  subnormal += ((1u << (shift - 1u)) - ((m & ((1u << shift) - 1u)) + (subnormal & 1u))) >> 31;

  std::uint32_t h = select(mask_if_less(a, 0x38800000u), subnormal, normal);
  h = select(mask_if_less(0x477fefffu, a), 0x7c00u, h);  // Inf, or at least 65520
  h = select(mask_if_less(0x7f800000u, a), 0x7e00u | ((a >> 13) & 0x3ffu), h);  // NaN: quiet
  return Float16{static_cast<std::uint16_t>(sign | h)};
}

DPT_HOST_DEVICE float to_float(Float16 value) {
  using half_bits::mask_if_less;
  using half_bits::select;
  const std::uint32_t bits = value.bits;
  const std::uint32_t sign = (bits & 0x8000u) << 16;
  const std::uint32_t exponent = (bits >> 10) & 0x1fu, fraction = bits & 0x3ffu;
  // Zero or subnormal: fraction * 2^-24, exact in float and a normal float (so FTZ/DAZ do not
  // touch it).
  const float small =
      static_cast<float>(static_cast<std::int32_t>(fraction)) * 5.9604644775390625e-8f;
  std::uint32_t small_bits = 0;
  std::memcpy(&small_bits, &small, sizeof small_bits);
  const std::uint32_t wide =
      select(mask_if_less(30u, exponent), 0x7f800000u, (exponent + 112u) << 23) | (fraction << 13);
  const std::uint32_t u = sign | select(mask_if_less(exponent, 1u), small_bits, wide);
  float f = 0.0f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

template <typename T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::kF32; }
template <> constexpr DType dtype_of<BFloat16>() { return DType::kBF16; }
template <>
constexpr DType dtype_of<Float16>() {
  return DType::kF16;
}
template <> constexpr DType dtype_of<std::int32_t>() { return DType::kI32; }
template <> constexpr DType dtype_of<std::uint8_t>() { return DType::kU8; }

}  // namespace dpt
