// SPDX-License-Identifier: MIT
// Kernels of the exact sum on the GPU: chunk codes, quantise-and-sum, dequantise.
#include "comm/nccl/exact_sum_kernels.h"

#include <cstddef>
#include <cstdint>
#include <span>

#include "comm/nccl/exact_sum_plan.h"
#include "runtime/cuda/cuda_check.h"

namespace dpt::comm::nccl {

// Note [Exact sum on the GPU]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The exact sum of device shards (NcclCommunicator::exact_sum_async) is the MPI backend's sequence
// (Note [Exact gradient sum] in runtime/exact_sum.cpp), every step on the NCCL stream after the
// compute stream's pending work (Note [NCCL stream ordering]):
//   1. chunk codes of this rank's shards (a kernel), ncclAllReduce of the int32 codes with
//      ncclMax: every rank then holds the codes of the chunks over every shard;
//   2. quantise and sum this rank's shards into int64 (a kernel), padded with zeros to a multiple
//      of the world size, and ncclReduceScatter with ncclSum: rank r holds the sum over every
//      shard of block r;
//   3. dequantise block r (a kernel) and ncclAllGather the floats, straight into the output when
//      the count divides by the world size, else into a float scratch whose first `count` values
//      are then copied to the output.
// Why the same bits as the host: the kernels' per-element work is element_sum / element_result
// (exact_sum_plan.h, run by the CPU tests too) over the DPT_HOST_DEVICE functions of
// runtime/exact_sum.h that the host loops call, with the same scale 2^F (power_of_two builds the
// double that std::ldexp(1.0, F) returns); the double arithmetic involved (a float widened, a
// product by a power of two, the addition of 1.5 * 2^52, an int64 below 2^51 converted to double
// and a product rounded to float) is correctly rounded IEEE arithmetic in the default rounding mode
// on the GPU as on the CPU (no flush to zero: nvcc's default -ftz=false; no contraction:
// --fmad=false, though the product is exact anyway). Integer sums do not depend on their order, so
// the order of the shards in a thread, of NCCL's reduction and of the ranks does not matter, and
// MAX of codes is order-free too.
//
// The codes kernel gives each chunk a block (a grid-stride loop over chunks) that reduces the
// widest magnitude bits of the chunk in every shard: no atomics, no initialisation, and the
// block's threads read consecutive values. Chunks are 256 values in training (Note [Exact sum
// chunks] in data_parallel.cpp), one value per thread; a much longer chunk is still correct, only
// slower. The element kernels are grid-stride loops that find an element's chunk by binary search
// over the starts (chunk_index in exact_sum_plan.h), which suits any chunk layout.
//
// No per-call host-to-device copy: a cudaMemcpyAsync from pageable memory may wait for the stream
// to drain (CUDA's "API synchronization behavior"), here the NCCL stream, which waits for the
// compute stream and the buckets before: the host would stall the backward pass it overlaps. So
// the shard pointers travel as kernel arguments, in groups of kShardsPerLaunch (a later group adds
// to the first one's integers or raises its codes: both order-free), and the chunk starts are
// uploaded once per distinct layout and kept (DataParallel's buckets repeat their layouts every
// step; NcclCommunicator's cache of starts). The codes and integer sums live in one scratch
// allocation (exact_sum_plan.h), stream-ordered on the NCCL stream and kept for the next call:
// every exact sum runs on that stream in launch order, so consecutive buckets in flight use it one
// after the other; a larger one replaces it by cudaFreeAsync on the same stream, after the work
// that still uses it.
namespace {

constexpr int kThreads = 256;
constexpr int kWarp = 32;
// 2^16 blocks of 256 threads fill any current GPU; grid-stride loops take the rest.
constexpr std::int64_t kMaxBlocks = std::int64_t{1} << 16;

unsigned blocks_for(std::int64_t work) {
  const std::int64_t blocks = (work + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > kMaxBlocks ? kMaxBlocks : blocks));
}

// In 64 bits: blockIdx.x * blockDim.x overflows 32 bits on large grids.
__device__ __forceinline__ std::int64_t grid_start() {
  return static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ std::int64_t grid_stride() {
  return static_cast<std::int64_t>(gridDim.x) * blockDim.x;
}

// One block per chunk; the largest magnitude bits of the chunk in every shard give its code
// (code_of_widest). A later group of shards raises the codes of the first. __grid_constant__: the
// shard pointers are read from the argument space in place, not copied per thread.
__global__ void __launch_bounds__(kThreads)
    chunk_codes_kernel(const __grid_constant__ ShardGroup shards, bool first_group,
                       std::int64_t count, const std::int64_t* starts, std::int64_t chunks,
                       std::int32_t* codes) {
  __shared__ std::uint32_t warp_widest[kThreads / kWarp];
  for (std::int64_t c = blockIdx.x; c < chunks; c += gridDim.x) {
    const std::int64_t begin = starts[c], end = c + 1 < chunks ? starts[c + 1] : count;
    std::uint32_t widest = 0;
    for (int s = 0; s < shards.count; ++s) {
      const float* shard = shards.data[s];
      for (std::int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
        widest = max(widest, __float_as_uint(shard[i]) & 0x7fffffffu);
      }
    }
    for (int offset = kWarp / 2; offset > 0; offset /= 2) {
      widest = max(widest, __shfl_down_sync(0xffffffffu, widest, offset));
    }
    if (threadIdx.x % kWarp == 0) warp_widest[threadIdx.x / kWarp] = widest;
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < kThreads / kWarp; ++w) widest = max(widest, warp_widest[w]);
      const std::int32_t code = code_of_widest(widest);
      codes[c] = first_group ? code : max(codes[c], code);
    }
    __syncthreads();  // warp_widest is written again for the next chunk
  }
}

// The first group of shards writes every integer, the padding's zeros included; a later group adds
// its values to those of the real elements.
__global__ void quantize_sum_kernel(const __grid_constant__ ShardGroup shards, bool first_group,
                                    std::int64_t count, std::int64_t padded,
                                    const std::int64_t* starts, std::int64_t chunks,
                                    const std::int32_t* codes, int headroom, std::int64_t* sums) {
  const std::int64_t end = first_group ? padded : count;
  for (std::int64_t i = grid_start(); i < end; i += grid_stride()) {
    const std::int64_t sum = i < count
                                 ? element_sum(shards.data, shards.count, i,
                                               codes[chunk_index(starts, chunks, i)], headroom)
                                 : 0;
    sums[i] = first_group ? sum : sums[i] + sum;
  }
}

// Elements at or beyond `count` (the padding) become 0; they are never copied out.
__global__ void dequantize_kernel(const std::int64_t* sums, std::int64_t first, std::int64_t length,
                                  std::int64_t count, const std::int64_t* starts,
                                  std::int64_t chunks, const std::int32_t* codes, int headroom,
                                  float* out) {
  for (std::int64_t j = grid_start(); j < length; j += grid_stride()) {
    const std::int64_t i = first + j;
    out[j] =
        i < count ? element_result(sums[j], codes[chunk_index(starts, chunks, i)], headroom) : 0.0f;
  }
}

}  // namespace

void exact_chunk_codes(cudaStream_t stream, std::span<const float* const> shards,
                       std::int64_t count, const std::int64_t* starts, std::int64_t chunks,
                       std::int32_t* codes) {
  if (chunks == 0) return;
  const auto blocks = static_cast<unsigned>(chunks < kMaxBlocks ? chunks : kMaxBlocks);
  for_each_shard_group(shards, [&](const ShardGroup& group, bool first_group) {
    chunk_codes_kernel<<<blocks, kThreads, 0, stream>>>(group, first_group, count, starts, chunks,
                                                        codes);
    DPT_CUDA_CHECK(cudaGetLastError());
  });
}

void exact_quantize_sum(cudaStream_t stream, std::span<const float* const> shards,
                        std::int64_t count, std::int64_t padded, const std::int64_t* starts,
                        std::int64_t chunks, const std::int32_t* codes, int headroom,
                        std::int64_t* sums) {
  if (padded == 0) return;
  for_each_shard_group(shards, [&](const ShardGroup& group, bool first_group) {
    quantize_sum_kernel<<<blocks_for(padded), kThreads, 0, stream>>>(
        group, first_group, count, padded, starts, chunks, codes, headroom, sums);
    DPT_CUDA_CHECK(cudaGetLastError());
  });
}

void exact_dequantize(cudaStream_t stream, const std::int64_t* sums, std::int64_t first,
                      std::int64_t length, std::int64_t count, const std::int64_t* starts,
                      std::int64_t chunks, const std::int32_t* codes, int headroom, float* out) {
  if (length == 0) return;
  dequantize_kernel<<<blocks_for(length), kThreads, 0, stream>>>(sums, first, length, count, starts,
                                                                 chunks, codes, headroom, out);
  DPT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace dpt::comm::nccl
