// SPDX-License-Identifier: MIT
// [..., C] as [rows, C]: dense layers over sequences ([B,T,C]) run their products over all
// positions at once. A view, no copy.
#pragma once

#include "runtime/tensor.h"

namespace dpt::nn {

inline Tensor as_rows(const Tensor& t) {
  const std::int64_t width = t.dim(t.rank() - 1);
  return t.reshape({width == 0 ? 0 : t.numel() / width, width});
}

}  // namespace dpt::nn
