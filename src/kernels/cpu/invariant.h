// SPDX-License-Identifier: MIT
// Thread-invariant mode (Context::thread_invariant()): the dense and convolution ops split their
// work by a fixed rule that does not look at the thread count, and every piece is computed
// sequentially by one thread, so the bits of the result are the same for any threads().
// See Note [Thread-invariant kernels].
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <mutex>

#include "kernels/shapes.h"
#include "runtime/context.h"

namespace dpt::kernels::cpu {

// Note [Thread-invariant kernels]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// oneDNN and OpenBLAS choose their work split from the thread count, and some splits cut a
// reduction (the batch of a weight gradient, the K of a GEMM): partial sums are then added in an
// order that depends on the threads, and the bits change (measured: oneDNN's convolution
// backward-weights at the cnn's shapes, OpenBLAS's sgemm at 3 threads). In thread-invariant mode:
// - Linear: the output is cut into kGemmBlock x kGemmBlock blocks; each block is one dnnl_sgemm
//   over the whole reduction, run by one thread. Called from a thread whose OpenMP thread count is
//   1, oneDNN's GEMM runs sequentially, so a block's bits depend on its shape and data only.
//   OpenBLAS is not called.
// - Convolution: the batch is cut into groups of kConvGroup samples (the last one smaller); each
//   group is run by a oneDNN primitive created while OpenMP's thread count is 1, so its work split
//   is the one-thread split (a primitive created for N threads and run inside a parallel region
//   computes only thread 0's share). Each worker has its own primitives, stream, buffers and
//   scratchpad. Backward-weights writes one partial gradient per group and adds them in group
//   order.
// - Everything else already is invariant by construction: elementwise ops and optimizer steps
//   work per element, pooling per plane, the loss per row (rows then added in order), the sum of
//   squares over fixed 4096-element chunks (added in order), the linear bias gradient per column,
//   the transformer layers (cpu/transformer.cpp: parameter gradients per channel block in row
//   order, attention per (batch, head) on one thread).
// Blocks are handed out dynamically: which thread computes a block does not change its bits.
constexpr std::int64_t kGemmBlock = 256;
constexpr std::int64_t kConvGroup = 4;

// Sets this thread's OpenMP thread count (for the parallel regions it starts, and what oneDNN
// reads as "max threads") while alive, then restores it.
class OmpThreads {
 public:
  explicit OmpThreads(int threads) : saved_(omp_get_max_threads()) { omp_set_num_threads(threads); }
  OmpThreads(const OmpThreads&) = delete;
  OmpThreads& operator=(const OmpThreads&) = delete;
  ~OmpThreads() { omp_set_num_threads(saved_); }

 private:
  int saved_;
};

// An exception must not leave an OpenMP region: the first one is kept and rethrown after it.
class RegionErrors {
 public:
  template <typename F>
  void run(F&& f) noexcept {
    try {
      f();
    } catch (...) {
      const std::lock_guard<std::mutex> lock(mutex_);
      if (!first_) first_ = std::current_exception();
    }
  }
  void rethrow() const {
    if (first_) std::rethrow_exception(first_);
  }

 private:
  std::mutex mutex_;
  std::exception_ptr first_;
};

// Threads parallel_blocks() uses for `blocks` blocks: what each needs its own resources for.
inline int block_workers(const Context& ctx, std::int64_t blocks) {
  return static_cast<int>(std::clamp<std::int64_t>(blocks, 1, std::max(ctx.threads(), 1)));
}

// Runs body(block, worker) for every block in [0, blocks) on block_workers() threads, worker in
// [0, block_workers()). Inside, each thread's OpenMP thread count is 1: what body calls (oneDNN's
// GEMM, primitives) runs sequentially, also when the team has one thread (omp_in_parallel() is
// then false and oneDNN would otherwise use every thread). An exception from body is rethrown
// after the region.
template <typename Body>
void parallel_blocks(const Context& ctx, std::int64_t blocks, Body&& body) {
  if (blocks <= 0) return;
  RegionErrors errors;
#pragma omp parallel num_threads(block_workers(ctx, blocks))
  {
    omp_set_num_threads(1);  // this implicit task's own setting: gone when the region ends
    const int worker = omp_get_thread_num();
#pragma omp for schedule(dynamic)
    for (std::int64_t b = 0; b < blocks; ++b) errors.run([&] { body(b, worker); });
  }
  errors.rethrow();
}

// The invariant variants of the ops of kernels_cpu.h (same arguments and contracts).
void linear_forward_invariant(const Context& ctx, const float* x, const float* w, const float* b,
                              float* y, std::int64_t n, std::int64_t k, std::int64_t m, bool relu);
void linear_backward_data_invariant(const Context& ctx, const float* dy, const float* w, float* dx,
                                    std::int64_t n, std::int64_t k, std::int64_t m);
void linear_backward_weights_invariant(const Context& ctx, const float* x, const float* dy,
                                       float* dw, std::int64_t n, std::int64_t k, std::int64_t m,
                                       bool accumulate);
void conv2d_forward_invariant(const Context& ctx, const ConvShape& s, const float* x,
                              const float* w, const float* b, float* y, bool relu);
void conv2d_backward_data_invariant(const Context& ctx, const ConvShape& s, const float* dy,
                                    const float* w, float* dx);
void conv2d_backward_weights_invariant(const Context& ctx, const ConvShape& s, const float* x,
                                       const float* dy, float* dw, float* db, bool accumulate);

}  // namespace dpt::kernels::cpu
