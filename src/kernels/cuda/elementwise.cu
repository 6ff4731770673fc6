// SPDX-License-Identifier: MIT
// Elementwise kernels over the shared math of kernels/elementwise_math.h: relu, dropout (the same
// Philox blocks as the CPU loop), scale, axpy, and the fixed-order sum of squares. Built with
// --fmad=false (CMakeLists.txt), so a*b+c is rounded twice as on the CPU and results match it
// bitwise.
#include <cstdint>
#include <vector>

#include "kernels/cuda/grid.cuh"
#include "kernels/cuda/kernels_cuda.h"
#include "kernels/cuda/launch.h"
#include "kernels/elementwise_math.h"
#include "runtime/cuda/device_memory.h"

namespace dpt::kernels::cuda {
namespace {

// The CPU's sum_squares chunking (kernels/cpu/elementwise.cpp): fixed chunks of 4096 elements,
// eight lanes per chunk (element i to lane i % 8), lanes combined as a fixed tree, chunk sums
// added in index order. Kept equal to the CPU constant so both backends give the same bits.
constexpr std::int64_t kSumChunk = 4096;
constexpr int kSumLanes = 8;

__global__ void relu_forward_kernel(const float* x, float* y, std::int64_t n) {
  for (std::int64_t i = grid_start(); i < n; i += grid_stride()) y[i] = relu(x[i]);
}

__global__ void relu_backward_kernel(const float* y, const float* dy, float* dx, std::int64_t n) {
  for (std::int64_t i = grid_start(); i < n; i += grid_stride()) dx[i] = relu_grad(y[i], dy[i]);
}

// One thread per (sample, block of 4 elements), running the CPU loop's body (dropout_block).
__global__ void dropout_forward_kernel(const float* x, float* y, float* mask, std::int64_t samples,
                                       std::int64_t per_sample, std::int64_t blocks, float p,
                                       float keep_scale, DropoutKey key) {
  const std::int64_t total = samples * blocks;
  for (std::int64_t t = grid_start(); t < total; t += grid_stride()) {
    const std::int64_t s = t / blocks, blk = t - s * blocks;
    dropout_block(x, y, mask, s, blk, per_sample, p, keep_scale, key.seed, key.step, key.layer,
                  key.first_sample);
  }
}

__global__ void multiply_kernel(const float* a, const float* b, float* out, std::int64_t n) {
  for (std::int64_t i = grid_start(); i < n; i += grid_stride()) out[i] = a[i] * b[i];
}

__global__ void scale_kernel(float* y, float alpha, std::int64_t n) {
  for (std::int64_t i = grid_start(); i < n; i += grid_stride()) y[i] *= alpha;
}

__global__ void axpy_kernel(float alpha, const float* x, float* y, std::int64_t n) {
  for (std::int64_t i = grid_start(); i < n; i += grid_stride()) y[i] += alpha * x[i];
}

// Thread (chunk, lane) sums lane `lane` of its chunk in index order, in double.
__global__ void sum_squares_lanes_kernel(const float* x, std::int64_t n, std::int64_t chunks,
                                         double* lanes) {
  const std::int64_t total = chunks * kSumLanes;
  for (std::int64_t t = grid_start(); t < total; t += grid_stride()) {
    const std::int64_t chunk = t / kSumLanes, lane = t - chunk * kSumLanes;
    const std::int64_t begin = chunk * kSumChunk;
    const std::int64_t end = begin + kSumChunk < n ? begin + kSumChunk : n;
    double sum = 0.0;
    for (std::int64_t i = begin + lane; i < end; i += kSumLanes) {
      const double v = x[i];
      sum += v * v;
    }
    lanes[t] = sum;
  }
}

// The CPU's lane tree: ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)).
__global__ void sum_squares_chunks_kernel(const double* lanes, std::int64_t chunks,
                                          double* partial) {
  for (std::int64_t c = grid_start(); c < chunks; c += grid_stride()) {
    const double* l = lanes + c * kSumLanes;
    partial[c] = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
  }
}

}  // namespace

void relu_forward(const Context& ctx, const float* x, float* y, std::int64_t n) {
  if (n == 0) return;
  relu_forward_kernel<<<blocks_for(n), kThreads, 0, stream_of(ctx)>>>(x, y, n);
  DPT_CUDA_CHECK_LAUNCH();
}

void relu_backward(const Context& ctx, const float* y, const float* dy, float* dx, std::int64_t n) {
  if (n == 0) return;
  relu_backward_kernel<<<blocks_for(n), kThreads, 0, stream_of(ctx)>>>(y, dy, dx, n);
  DPT_CUDA_CHECK_LAUNCH();
}

void dropout_forward(const Context& ctx, const float* x, float* y, float* mask,
                     std::int64_t samples, std::int64_t per_sample, float p,
                     const DropoutKey& key) {
  const std::int64_t blocks = (per_sample + 3) / 4;
  if (samples == 0 || blocks == 0) return;
  const float keep_scale = 1.0f / (1.0f - p);  // as the CPU computes it, on the host
  dropout_forward_kernel<<<blocks_for(samples * blocks), kThreads, 0, stream_of(ctx)>>>(
      x, y, mask, samples, per_sample, blocks, p, keep_scale, key);
  DPT_CUDA_CHECK_LAUNCH();
}

void dropout_backward(const Context& ctx, const float* dy, const float* mask, float* dx,
                      std::int64_t n) {
  if (n == 0) return;
  multiply_kernel<<<blocks_for(n), kThreads, 0, stream_of(ctx)>>>(dy, mask, dx, n);
  DPT_CUDA_CHECK_LAUNCH();
}

void scale(const Context& ctx, float* y, float alpha, std::int64_t n) {
  if (n == 0) return;
  scale_kernel<<<blocks_for(n), kThreads, 0, stream_of(ctx)>>>(y, alpha, n);
  DPT_CUDA_CHECK_LAUNCH();
}

void axpy(const Context& ctx, float alpha, const float* x, float* y, std::int64_t n) {
  if (n == 0) return;
  axpy_kernel<<<blocks_for(n), kThreads, 0, stream_of(ctx)>>>(alpha, x, y, n);
  DPT_CUDA_CHECK_LAUNCH();
}

void sum_squares_chunks(const Context& ctx, const float* x, std::int64_t n, double* host_out) {
  const std::int64_t chunks = (n + kSumChunk - 1) / kSumChunk;
  if (chunks == 0) return;
  const cudaStream_t stream = stream_of(ctx);
  // Scratch: chunks * 8 lane sums, then the chunks partial sums.
  auto* lanes = static_cast<double*>(
      scratch(ctx, static_cast<std::size_t>(chunks) * (kSumLanes + 1) * sizeof(double)));
  double* partial = lanes + chunks * kSumLanes;
  sum_squares_lanes_kernel<<<blocks_for(chunks * kSumLanes), kThreads, 0, stream>>>(x, n, chunks,
                                                                                    lanes);
  DPT_CUDA_CHECK_LAUNCH();
  sum_squares_chunks_kernel<<<blocks_for(chunks), kThreads, 0, stream>>>(lanes, chunks, partial);
  DPT_CUDA_CHECK_LAUNCH();
  // Waits for the kernels (copy() synchronises the compute stream for a device-to-host copy).
  ::dpt::cuda::copy(host_out, false, partial, true, static_cast<std::size_t>(chunks) * sizeof(double),
                    ctx.device().index);
}

double sum_squares(const Context& ctx, const float* x, std::int64_t n) {
  std::vector<double> host(static_cast<std::size_t>((n + kSumChunk - 1) / kSumChunk));
  sum_squares_chunks(ctx, x, n, host.data());
  double total = 0.0;
  for (double v : host) total += v;  // chunk sums in index order, as the CPU
  return total;
}

}  // namespace dpt::kernels::cuda
