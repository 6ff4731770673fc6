// SPDX-License-Identifier: MIT
// The three kernels of the exact sum on the GPU (Note [Exact sum on the GPU] in
// exact_sum_kernels.cu), each the device twin of one host loop of runtime/exact_sum.h over the same
// per-element functions. All arrays are device memory; `starts` holds `chunks` ascending chunk
// starts from 0 (the last chunk ends at `count`). The shard pointers are host values (device
// addresses), passed to the kernels as arguments. Each call only enqueues on `stream`.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <span>

namespace dpt::comm::nccl {

// codes[c] = the largest exact::value_code over chunk c of every shard (exact::chunk_codes).
void exact_chunk_codes(cudaStream_t stream, std::span<const float* const> shards,
                       std::int64_t count, const std::int64_t* starts, std::int64_t chunks,
                       std::int32_t* codes);

// sums[i] = the sum over shards of the quantised shards[s][i] for i < count, and 0 for
// count <= i < padded (the reduce-scatter's padding), with the reduced `codes` and `headroom` =
// exact::headroom_bits(total shards of every rank) (exact::quantize_sum).
void exact_quantize_sum(cudaStream_t stream, std::span<const float* const> shards,
                        std::int64_t count, std::int64_t padded, const std::int64_t* starts,
                        std::int64_t chunks, const std::int32_t* codes, int headroom,
                        std::int64_t* sums);

// out[j] = the float of sums[j], element first + j, for j < length; 0 for elements at or beyond
// `count` (exact::dequantize_range).
void exact_dequantize(cudaStream_t stream, const std::int64_t* sums, std::int64_t first,
                      std::int64_t length, std::int64_t count, const std::int64_t* starts,
                      std::int64_t chunks, const std::int32_t* codes, int headroom, float* out);

}  // namespace dpt::comm::nccl
