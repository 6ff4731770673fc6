// SPDX-License-Identifier: MIT
// The cached oneDNN convolution primitives (forward with bias + ReLU fused, backward-data,
// backward-weights + bias) for one ConvShape, with their operands and scratchpad, and how each is
// run on user pointers. conv.cpp keeps one per shape; conv_invariant.cpp one per sample group and
// worker (each worker runs its own, built for a single thread).
#pragma once

#include <memory>
#include <string>
#include <unordered_map>

#include "kernels/cpu/backend_state.h"
#include "kernels/shapes.h"

namespace dpt::kernels::cpu {

// Cache key of op on shape s; flags tell the variants apart (bias, relu, accumulate).
std::string conv_key(const char* op, const ConvShape& s, int flags);

struct ConvForward : CacheEntry {
  dnnl::primitive prim;
  Operand src, wei, dst;
  dnnl::memory bias;
  std::unordered_map<int, dnnl::memory> args;
  bool has_bias = false;

  // y = conv(x, w) (+ b, ReLU as built). reorder_weights = false reuses the weights already
  // reordered by the previous run (same w within one op call).
  // x and w of the type the primitive was built for (f32 or bf16).
  void run(dnnl::stream& strm, const void* x, const void* w, const float* b, float* y,
           bool reorder_weights = true);
};

struct ConvBackwardData : CacheEntry {
  dnnl::primitive prim;
  Operand diff_dst, wei, diff_src;
  std::unordered_map<int, dnnl::memory> args;

  void run(dnnl::stream& strm, const void* dy, const void* w, float* dx,
           bool reorder_weights = true);
};

struct ConvBackwardWeights : CacheEntry {
  dnnl::primitive prim;
  Operand src, diff_dst, diff_wei;
  dnnl::memory diff_bias_user;   // the user's db, used directly when not accumulating
  dnnl::memory diff_bias_inner;  // scratch db when accumulating (then added to the user's)
  std::unordered_map<int, dnnl::memory> args;
  bool has_bias = false, accumulate = false;

  // dw (+)= and db (+)= (db only when built with bias) the gradients of this shape's batch.
  void run(dnnl::stream& strm, std::int64_t o, const void* x, const void* dy, float* dw,
           float* db);
};

// Built for the thread count OpenMP reports now (omp_get_max_threads()): the primitive's work
// split is fixed at creation. bf16: the inputs of the pass are bf16 (outputs stay f32).
std::unique_ptr<ConvForward> make_conv_forward(dnnl::engine& engine, const ConvShape& s, bool bias,
                                               bool relu, bool bf16 = false);
std::unique_ptr<ConvBackwardData> make_conv_backward_data(dnnl::engine& engine, const ConvShape& s,
                                                          bool bf16 = false);
std::unique_ptr<ConvBackwardWeights> make_conv_backward_weights(dnnl::engine& engine,
                                                                const ConvShape& s, bool bias,
                                                                bool accumulate,
                                                                bool bf16 = false);

}  // namespace dpt::kernels::cpu
