// SPDX-License-Identifier: MIT
// The integrity checks over kernels/integrity_math.h: the first non-finite index of a buffer
// (stream-ordered, no synchronisation) and the parameter hash, chunk for chunk the CPU's.
#include <cstdint>
#include <vector>

#include "kernels/cuda/grid.cuh"
#include "kernels/cuda/kernels_cuda.h"
#include "kernels/cuda/launch.h"
#include "kernels/integrity_math.h"
#include "runtime/cuda/device_memory.h"

namespace dpt::kernels::cuda {
namespace {

__global__ void set_index_kernel(std::int32_t* index, std::int32_t value) { *index = value; }

// Each thread keeps the smallest non-finite index of its grid-stride elements; one atomicMin per
// thread that found one (none in the common, all-finite case).
__global__ void find_nonfinite_kernel(const float* x, std::int64_t n, std::int32_t* index) {
  std::int64_t first = n;
  for (std::int64_t i = grid_start(); i < n; i += grid_stride()) {
    if (i < first && is_nonfinite_bits(float_bits(x[i]))) first = i;
  }
  if (first < n) atomicMin(index, static_cast<int>(first));
}

// One thread per chunk, running the CPU's chunk loop.
__global__ void hash_chunks_kernel(const float* x, std::int64_t n, std::int64_t chunks,
                                   std::uint64_t* out) {
  for (std::int64_t c = grid_start(); c < chunks; c += grid_stride()) {
    const std::int64_t begin = c * kHashChunk;
    const std::int64_t count = n - begin < kHashChunk ? n - begin : kHashChunk;
    out[c] = hash_chunk(x + begin, count);
  }
}

}  // namespace

void find_nonfinite(const Context& ctx, const float* x, std::int64_t n, std::int32_t* index) {
  const cudaStream_t stream = stream_of(ctx);
  set_index_kernel<<<1, 1, 0, stream>>>(index, static_cast<std::int32_t>(n));
  DPT_CUDA_CHECK_LAUNCH();
  if (n == 0) return;
  find_nonfinite_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, n, index);
  DPT_CUDA_CHECK_LAUNCH();
}

std::uint64_t hash_bits(const Context& ctx, const float* x, std::int64_t n) {
  const std::int64_t chunks = (n + kHashChunk - 1) / kHashChunk;
  std::vector<std::uint64_t> host(static_cast<std::size_t>(chunks));
  if (chunks > 0) {
    auto* out = static_cast<std::uint64_t*>(
        scratch(ctx, static_cast<std::size_t>(chunks) * sizeof(std::uint64_t)));
    hash_chunks_kernel<<<blocks_for(chunks), kThreads, 0, stream_of(ctx)>>>(x, n, chunks, out);
    DPT_CUDA_CHECK_LAUNCH();
    // Waits for the kernel (copy() synchronises the compute stream for a device-to-host copy).
    ::dpt::cuda::copy(host.data(), false, out, true, host.size() * sizeof(std::uint64_t),
                      ctx.device().index);
  }
  return hash_chunks(host.data(), chunks, n);
}

}  // namespace dpt::kernels::cuda
