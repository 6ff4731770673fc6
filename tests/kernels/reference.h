// SPDX-License-Identifier: MIT
// Naive double-precision references for the kernel tests: direct loops straight from the
// definitions, sharing no code with the implementation under test.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/ops.h"
#include "runtime/tensor.h"

namespace dpt::test::ref {

struct ConvDims {
  std::int64_t n, c, h, w, o, kh, kw, oh, ow, sh, sw, ph, pw;
};

inline ConvDims conv_dims(const Shape& x, const Shape& w, const kernels::Conv2dParams& p) {
  const std::int64_t oh = (x[2] + 2 * p.pad_h - w[2]) / p.stride_h + 1;
  const std::int64_t ow = (x[3] + 2 * p.pad_w - w[3]) / p.stride_w + 1;
  return {x[0], x[1], x[2], x[3], w[0], w[2], w[3], oh, ow, p.stride_h, p.stride_w, p.pad_h, p.pad_w};
}

// Calls fn(n, o, i, j, c, a, b, xh, xw) for every (output, tap) pair whose input is inside x.
template <typename Fn>
void for_each_tap(const ConvDims& d, Fn&& fn) {
  for (std::int64_t n = 0; n < d.n; ++n)
    for (std::int64_t o = 0; o < d.o; ++o)
      for (std::int64_t i = 0; i < d.oh; ++i)
        for (std::int64_t j = 0; j < d.ow; ++j)
          for (std::int64_t c = 0; c < d.c; ++c)
            for (std::int64_t a = 0; a < d.kh; ++a)
              for (std::int64_t b = 0; b < d.kw; ++b) {
                const std::int64_t xh = i * d.sh - d.ph + a, xw = j * d.sw - d.pw + b;
                if (xh < 0 || xh >= d.h || xw < 0 || xw >= d.w) continue;
                fn(n, o, i, j, c, a, b, xh, xw);
              }
}

inline std::vector<double> conv_forward(const Tensor& x, const Tensor& w, const Tensor* b,
                                        const kernels::Conv2dParams& p, bool relu) {
  const ConvDims d = conv_dims(x.shape(), w.shape(), p);
  std::vector<double> y(static_cast<std::size_t>(d.n * d.o * d.oh * d.ow), 0.0);
  const float* xp = x.data<float>();
  const float* wp = w.data<float>();
  for_each_tap(d, [&](auto n, auto o, auto i, auto j, auto c, auto a, auto bb, auto xh, auto xw) {
    y[((n * d.o + o) * d.oh + i) * d.ow + j] +=
        static_cast<double>(xp[((n * d.c + c) * d.h + xh) * d.w + xw]) *
        wp[((o * d.c + c) * d.kh + a) * d.kw + bb];
  });
  for (std::int64_t n = 0; n < d.n; ++n)
    for (std::int64_t o = 0; o < d.o; ++o)
      for (std::int64_t k = 0; k < d.oh * d.ow; ++k) {
        double& v = y[(n * d.o + o) * d.oh * d.ow + k];
        if (b) v += b->data<float>()[o];
        if (relu && v < 0) v = 0;
      }
  return y;
}

inline std::vector<double> conv_backward_data(const Tensor& dy, const Tensor& w, const Shape& x_shape,
                                              const kernels::Conv2dParams& p) {
  const ConvDims d = conv_dims(x_shape, w.shape(), p);
  std::vector<double> dx(static_cast<std::size_t>(numel_of(x_shape)), 0.0);
  const float* g = dy.data<float>();
  const float* wp = w.data<float>();
  for_each_tap(d, [&](auto n, auto o, auto i, auto j, auto c, auto a, auto bb, auto xh, auto xw) {
    dx[((n * d.c + c) * d.h + xh) * d.w + xw] +=
        static_cast<double>(g[((n * d.o + o) * d.oh + i) * d.ow + j]) *
        wp[((o * d.c + c) * d.kh + a) * d.kw + bb];
  });
  return dx;
}

// dw then db (O values) appended.
inline std::vector<double> conv_backward_weights(const Tensor& x, const Tensor& dy, const Shape& w_shape,
                                                 const kernels::Conv2dParams& p) {
  const ConvDims d = conv_dims(x.shape(), w_shape, p);
  const std::int64_t wn = numel_of(w_shape);
  std::vector<double> out(static_cast<std::size_t>(wn + d.o), 0.0);
  const float* g = dy.data<float>();
  const float* xp = x.data<float>();
  for_each_tap(d, [&](auto n, auto o, auto i, auto j, auto c, auto a, auto bb, auto xh, auto xw) {
    out[((o * d.c + c) * d.kh + a) * d.kw + bb] +=
        static_cast<double>(g[((n * d.o + o) * d.oh + i) * d.ow + j]) *
        xp[((n * d.c + c) * d.h + xh) * d.w + xw];
  });
  for (std::int64_t n = 0; n < d.n; ++n)
    for (std::int64_t o = 0; o < d.o; ++o)
      for (std::int64_t k = 0; k < d.oh * d.ow; ++k) out[wn + o] += g[(n * d.o + o) * d.oh * d.ow + k];
  return out;
}

// y[n,m] = sum_k x[n,k] w[m,k] + b[m], relu optional.
inline std::vector<double> linear_forward(const Tensor& x, const Tensor& w, const Tensor* b, bool relu) {
  const std::int64_t n = x.dim(0), k = x.dim(1), m = w.dim(0);
  std::vector<double> y(static_cast<std::size_t>(n * m));
  const float *xp = x.data<float>(), *wp = w.data<float>();
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < m; ++j) {
      double acc = b ? b->data<float>()[j] : 0.0;
      for (std::int64_t l = 0; l < k; ++l) acc += static_cast<double>(xp[i * k + l]) * wp[j * k + l];
      y[i * m + j] = relu && acc < 0 ? 0.0 : acc;
    }
  return y;
}

struct PoolDims {
  std::int64_t n, c, h, w, oh, ow, kh, kw, sh, sw, ph, pw;
};

inline PoolDims pool_dims(const Shape& x, const kernels::Pool2dParams& p) {
  return {x[0], x[1], x[2], x[3], (x[2] + 2 * p.pad_h - p.kernel_h) / p.stride_h + 1,
          (x[3] + 2 * p.pad_w - p.kernel_w) / p.stride_w + 1, p.kernel_h, p.kernel_w,
          p.stride_h, p.stride_w, p.pad_h, p.pad_w};
}

// Max over each window (padding excluded); argmax[k] = flat input index of output k's max.
inline std::vector<double> max_pool(const Tensor& x, const kernels::Pool2dParams& p,
                                    std::vector<std::int64_t>* argmax) {
  const PoolDims d = pool_dims(x.shape(), p);
  std::vector<double> y;
  for (std::int64_t nc = 0; nc < d.n * d.c; ++nc)
    for (std::int64_t i = 0; i < d.oh; ++i)
      for (std::int64_t j = 0; j < d.ow; ++j) {
        double best = -std::numeric_limits<double>::infinity();
        std::int64_t where = -1;
        for (std::int64_t a = 0; a < d.kh; ++a)
          for (std::int64_t b = 0; b < d.kw; ++b) {
            const std::int64_t h = i * d.sh - d.ph + a, w = j * d.sw - d.pw + b;
            if (h < 0 || h >= d.h || w < 0 || w >= d.w) continue;
            const std::int64_t idx = (nc * d.h + h) * d.w + w;
            if (x.data<float>()[idx] > best) {
              best = x.data<float>()[idx];
              where = idx;
            }
          }
        y.push_back(best);
        if (argmax) argmax->push_back(where);
      }
  return y;
}

inline std::vector<double> to_double(const Tensor& t) {
  const float* p = t.data<float>();
  return std::vector<double>(p, p + t.numel());
}

}  // namespace dpt::test::ref
