// SPDX-License-Identifier: MIT
// kernels::cast and kernels::round_to_format against a reference that works on values, not bits
// (Note [Half-precision conversions] in runtime/dtype.h): every one of the 65536 patterns of bf16
// and of fp16 to float; float to each format at every representable value, its float neighbours,
// every midpoint between two neighbouring values of the format (where ties go to even) and the
// midpoints' neighbours, over the whole range with subnormals, overflow, signed zeros, Inf and NaN
// payloads; random floats; 1 and 2 threads and the ISA clone the machine picks. The CUDA kernels
// are held to these bits in tests/cuda/cuda_ops_test.cpp.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernels/ops.h"
#include "testing/test_util.h"

namespace dpt::kernels {
namespace {

using test::expect_error;

std::uint32_t bits_of(float f) {
  std::uint32_t u = 0;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
float float_of(std::uint32_t u) {
  float f = 0;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// A format by its parameters: fraction bits, exponent bias, exponent field width.
struct Format {
  DType dtype;
  int fraction_bits;
  int exponent_bits;
  int bias() const { return (1 << (exponent_bits - 1)) - 1; }
  std::uint16_t inf_bits() const {
    return static_cast<std::uint16_t>(((1u << exponent_bits) - 1u) << fraction_bits);
  }
  // The value of a pattern, from the IEEE definition (ldexp, in double: exact).
  double value(std::uint16_t h) const {
    const int sign = h >> 15;
    const int exponent = (h >> fraction_bits) & ((1 << exponent_bits) - 1);
    const int fraction = h & ((1 << fraction_bits) - 1);
    double v = 0;
    if (exponent == 0) {
      v = std::ldexp(static_cast<double>(fraction), 1 - bias() - fraction_bits);
    } else {
      v = std::ldexp(1.0 + std::ldexp(static_cast<double>(fraction), -fraction_bits),
                     exponent - bias());
    }
    return sign ? -v : v;
  }
};
const Format kBf16{DType::kBF16, 7, 8};
const Format kF16{DType::kF16, 10, 5};

// The reference for half -> float: Inf and NaN by definition (payload moved up), the rest by value.
std::uint32_t reference_to_float(const Format& f, std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h >> 15) << 31;
  if ((h & 0x7fffu) >= f.inf_bits()) {
    return sign | 0x7f800000u |
           (static_cast<std::uint32_t>(h & ((1u << f.fraction_bits) - 1u))
            << (23 - f.fraction_bits));
  }
  return bits_of(static_cast<float>(f.value(h)));  // exact: every half value is a float
}

// The reference for float -> half: a search for the nearest finite value among the format's
// non-negative patterns (ordered like their values), ties to the even pattern, Inf at and beyond
// the midpoint between the largest finite value and the next power of two; NaN by definition.
std::uint16_t reference_to_half(const Format& f, float x, bool* tie = nullptr) {
  const std::uint32_t u = bits_of(x);
  const std::uint16_t sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
  if (std::isnan(x)) {
    const std::uint32_t payload_top = (u & 0x7fffffu) >> (23 - f.fraction_bits);
    return static_cast<std::uint16_t>(sign | f.inf_bits() | (1u << (f.fraction_bits - 1)) |
                                      payload_top);
  }
  const double a = std::fabs(static_cast<double>(x));
  const std::uint16_t max_finite = static_cast<std::uint16_t>(f.inf_bits() - 1);
  const double max_value = f.value(max_finite);
  const double beyond = std::ldexp(1.0, f.bias() + 1);  // where the next pattern would be
  if (std::isinf(x) || a >= (max_value + beyond) / 2) return sign | f.inf_bits();
  std::uint16_t lo = 0, hi = max_finite;  // largest pattern whose value <= a
  while (lo < hi) {
    const std::uint16_t mid = static_cast<std::uint16_t>((lo + hi + 1) / 2);
    if (f.value(mid) <= a)
      lo = mid;
    else
      hi = static_cast<std::uint16_t>(mid - 1);
  }
  std::uint16_t best = lo;
  if (lo < max_finite) {
    const double below = a - f.value(lo), above = f.value(static_cast<std::uint16_t>(lo + 1)) - a;
    if (above < below || (above == below && (lo & 1u) != 0))
      best = static_cast<std::uint16_t>(lo + 1);
    if (tie != nullptr) *tie = above == below;
  }
  return static_cast<std::uint16_t>(sign | best);
}

// Floats around every value of the format: the value, its neighbours, the midpoint to the next
// value and the midpoint's neighbours; both signs; plus zeros, Inf, NaNs, float subnormals, the
// extremes and random floats.
std::vector<float> probe_floats(const Format& f) {
  std::vector<float> out;
  const auto add = [&](double v) {
    const float x = static_cast<float>(v);
    for (const float y : {x, std::nextafter(x, -INFINITY), std::nextafter(x, INFINITY)}) {
      out.push_back(y);
      out.push_back(-y);
    }
  };
  const std::uint16_t max_finite = static_cast<std::uint16_t>(f.inf_bits() - 1);
  for (std::uint32_t h = 0; h <= max_finite; ++h) {
    const double v = f.value(static_cast<std::uint16_t>(h));
    const double next =
        h < max_finite ? f.value(static_cast<std::uint16_t>(h + 1)) : std::ldexp(1.0, f.bias() + 1);
    add(v);
    add((v + next) / 2);  // exact in float for both formats
  }
  for (const std::uint32_t u : {0x7f800000u, 0x7fc00000u, 0x7f800001u, 0x7fbfffffu, 0x7fe01234u,
                                0x7fffffffu, 0x00000001u, 0x007fffffu, 0x00400000u, 0x7f7fffffu,
                                0x33000000u, 0x33000001u, 0x477ff000u, 0x477fefffu}) {
    out.push_back(float_of(u));
    out.push_back(float_of(u | 0x80000000u));
  }
  std::mt19937 rng(17);
  for (int i = 0; i < 200000; ++i) out.push_back(float_of(static_cast<std::uint32_t>(rng())));
  return out;
}

class Cast : public ::testing::TestWithParam<int> {  // the thread count
 protected:
  Context ctx_ = Context::create(Device::cpu(), GetParam());
};

TEST_P(Cast, EveryHalfPatternToFloatIsExact) {
  for (const Format& f : {kBf16, kF16}) {
    SCOPED_TRACE(std::string(to_string(f.dtype)));
    Tensor h = Tensor::empty({65536}, f.dtype);
    auto* bits = static_cast<std::uint16_t*>(h.raw_data());
    for (std::uint32_t i = 0; i < 65536; ++i) bits[i] = static_cast<std::uint16_t>(i);
    Tensor y = Tensor::empty({65536});
    cast(ctx_, h, y);
    for (std::uint32_t i = 0; i < 65536; ++i) {
      ASSERT_EQ(bits_of(y.data<float>()[i]), reference_to_float(f, static_cast<std::uint16_t>(i)))
          << "pattern 0x" << std::hex << i;
    }
  }
}

TEST_P(Cast, FloatToHalfRoundsToNearestEvenEverywhere) {
  for (const Format& f : {kBf16, kF16}) {
    SCOPED_TRACE(std::string(to_string(f.dtype)));
    const std::vector<float> probes = probe_floats(f);
    const std::int64_t n = static_cast<std::int64_t>(probes.size());
    Tensor x = Tensor::empty({n});
    std::copy(probes.begin(), probes.end(), x.data<float>());
    Tensor h = Tensor::empty({n}, f.dtype), rounded = Tensor::empty({n});
    cast(ctx_, x, h);
    round_to_format(ctx_, x, rounded, f.dtype);
    const auto* got = static_cast<const std::uint16_t*>(h.raw_data());
    std::int64_t ties = 0, overflows = 0, subnormals = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      bool tie = false;
      const std::uint16_t want = reference_to_half(f, probes[i], &tie);
      ASSERT_EQ(got[i], want) << "float 0x" << std::hex << bits_of(probes[i]) << " (" << probes[i]
                              << ")";
      ASSERT_EQ(bits_of(rounded.data<float>()[i]), reference_to_float(f, want))
          << "round_to_format of float 0x" << std::hex << bits_of(probes[i]);
      overflows += (want & 0x7fffu) == f.inf_bits() && std::isfinite(probes[i]);
      subnormals += (want & 0x7fffu) != 0 && (want & f.inf_bits()) == 0;
      ties += tie;
    }
    // The probes reach every case the rounding distinguishes.
    EXPECT_GT(overflows, 0);
    EXPECT_GT(subnormals, 1000);
    EXPECT_GT(ties, 1000);
  }
}

TEST_P(Cast, RoundToFormatMayWorkInPlaceAndMatchesCastThereAndBack) {
  const Tensor x = test::random_tensor({100003}, 9);
  for (const DType format : {DType::kBF16, DType::kF16}) {
    Tensor half = Tensor::empty(x.shape(), format), back = Tensor::empty(x.shape());
    cast(ctx_, x, half);
    cast(ctx_, half, back);
    Tensor in_place = x.clone();
    round_to_format(ctx_, in_place, in_place, format);
    EXPECT_EQ(std::memcmp(in_place.raw_data(), back.raw_data(), back.size_bytes()), 0)
        << to_string(format);
  }
}

INSTANTIATE_TEST_SUITE_P(Threads, Cast, ::testing::Values(1, 2));

TEST(CastErrors, NameTheOpAndTheDtypes) {
  const Context ctx = Context::create(Device::cpu());
  Tensor f = Tensor::empty({4}), b = Tensor::empty({4}, DType::kBF16),
         h = Tensor::empty({4}, DType::kF16);
  Tensor i = Tensor::empty({4}, DType::kI32), short_b = Tensor::empty({3}, DType::kBF16);
  expect_error([&] { cast(ctx, b, h); },
               {"cast: converts f32 to bf16 or f16 and back, not bf16 to f16"});
  expect_error([&] { cast(ctx, f, i); }, {"not f32 to i32"});
  expect_error([&] { cast(ctx, f, short_b); }, {"differ in element count"});
  expect_error([&] { round_to_format(ctx, f, f, DType::kI32); },
               {"rounds to bf16 or f16, not i32"});
  expect_error([&] { round_to_format(ctx, b, f, DType::kBF16); }, {"x must be f32, found bf16"});
}

}  // namespace
}  // namespace dpt::kernels
