// SPDX-License-Identifier: MIT
// The shape records of convolution, pooling and attention that dispatch.cpp builds once per call and hands to
// whichever backend runs it (cpu/ or cuda/); neither backend includes the other's header. Plain
// aggregates of int64 extents, so CUDA kernels take them by value.
#pragma once

#include <cstdint>

namespace dpt::kernels {

struct ConvShape {
  std::int64_t n, c, h, w;      // input
  std::int64_t o, kh, kw;       // weights [o, c, kh, kw]
  std::int64_t oh, ow;          // output
  std::int64_t sh, sw, ph, pw;  // stride and symmetric padding
};

struct PoolShape {
  std::int64_t n, c, h, w, oh, ow;
  std::int64_t kh, kw, sh, sw, ph, pw;
};

// Causal self-attention: qkv [b, t, 3c], y [b, t, c], heads of d = c / heads channels.
struct AttentionShape {
  std::int64_t b, t, c, heads, d;
};

}  // namespace dpt::kernels
