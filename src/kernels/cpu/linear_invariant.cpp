// SPDX-License-Identifier: MIT
// The linear layer in thread-invariant mode (Note [Thread-invariant kernels]): the output is cut
// into fixed kGemmBlock x kGemmBlock blocks, each one sequential dnnl_sgemm over the whole
// reduction; bias and ReLU are added per element by the block's thread.
#include <algorithm>

#include "kernels/cpu/backend_state.h"
#include "kernels/cpu/invariant.h"
#include "kernels/elementwise_math.h"

namespace dpt::kernels::cpu {
namespace {

// The blocks of a [rows, cols] output: fn(r0, rb, c0, cb) per block, in parallel.
template <typename Fn>
void for_each_output_block(const Context& ctx, std::int64_t rows, std::int64_t cols, Fn&& fn) {
  const std::int64_t row_blocks = (rows + kGemmBlock - 1) / kGemmBlock;
  const std::int64_t col_blocks = (cols + kGemmBlock - 1) / kGemmBlock;
  parallel_blocks(ctx, row_blocks * col_blocks, [&](std::int64_t block, int /*worker*/) {
    const std::int64_t r0 = block / col_blocks * kGemmBlock, c0 = block % col_blocks * kGemmBlock;
    fn(r0, std::min(kGemmBlock, rows - r0), c0, std::min(kGemmBlock, cols - c0));
  });
}

}  // namespace

void linear_forward_invariant(const Context& ctx, const float* x, const float* w, const float* b,
                              float* y, std::int64_t n, std::int64_t k, std::int64_t m, bool relu) {
  // y[n,m] = x[n,k] * w[m,k]^T, block (rows of x, rows of w).
  for_each_output_block(
      ctx, n, m, [&](std::int64_t r0, std::int64_t rb, std::int64_t c0, std::int64_t cb) {
        float* yb = y + r0 * m + c0;
        sgemm("linear_forward", 'N', 'T', rb, cb, k, x + r0 * k, k, w + c0 * k, k, 0.0f, yb, m);
        if (b == nullptr && !relu) return;
        for (std::int64_t i = 0; i < rb; ++i) {
          float* row = yb + i * m;
          for (std::int64_t j = 0; j < cb; ++j) {
            const float v = row[j] + (b ? b[c0 + j] : 0.0f);
            row[j] = relu ? kernels::relu(v) : v;  // the ReLU layer's math
          }
        }
      });
}

void linear_backward_data_invariant(const Context& ctx, const float* dy, const float* w, float* dx,
                                    std::int64_t n, std::int64_t k, std::int64_t m) {
  // dx[n,k] = dy[n,m] * w[m,k]
  for_each_output_block(ctx, n, k,
                        [&](std::int64_t r0, std::int64_t rb, std::int64_t c0, std::int64_t cb) {
                          sgemm("linear_backward_data", 'N', 'N', rb, cb, m, dy + r0 * m, m, w + c0,
                                k, 0.0f, dx + r0 * k + c0, k);
                        });
}

void linear_backward_weights_invariant(const Context& ctx, const float* x, const float* dy,
                                       float* dw, std::int64_t n, std::int64_t k, std::int64_t m,
                                       bool accumulate) {
  // dw[m,k] (+)= dy^T[m,n] * x[n,k]: the batch n is the reduction, never split.
  if (n == 0) {  // dnnl_sgemm returns at once when k = 0, without applying beta = 0
    if (!accumulate) std::fill(dw, dw + m * k, 0.0f);
    return;
  }
  for_each_output_block(ctx, m, k,
                        [&](std::int64_t r0, std::int64_t rb, std::int64_t c0, std::int64_t cb) {
                          sgemm("linear_backward_weights", 'T', 'N', rb, cb, n, dy + r0, m, x + c0,
                                k, accumulate ? 1.0f : 0.0f, dw + r0 * k + c0, k);
                        });
}

}  // namespace dpt::kernels::cpu
