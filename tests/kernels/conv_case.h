// SPDX-License-Identifier: MIT
// A convolution test shape, shared by the CPU, thread-invariance and CUDA kernel tests.
#pragma once

#include <cstdint>
#include <ostream>

namespace dpt::test {

struct ConvCase {
  std::int64_t n, c, h, w, o, k;
  int stride, pad;
};

inline std::ostream& operator<<(std::ostream& os, const ConvCase& c) {
  return os << "x[" << c.n << "," << c.c << "," << c.h << "," << c.w << "] o=" << c.o
            << " k=" << c.k << " s=" << c.stride << " p=" << c.pad;
}

}  // namespace dpt::test
