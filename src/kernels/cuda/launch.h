// SPDX-License-Identifier: MIT
// What the backend's .cpp and .cu files share: the compute stream and the scratch buffer of a
// Context's CudaBackendState (reachable from .cu files without the cuDNN/cuBLASLt headers), and
// the bias kernels that complete the library GEMMs and convolutions (bias.cu).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "runtime/context.h"
#include "runtime/dtype.h"

namespace dpt::kernels::cuda {

// The compute stream of ctx.device(): every kernel, cuBLASLt and cuDNN call goes there.
cudaStream_t stream_of(const Context& ctx);
// Device memory of at least `bytes` owned by the context's state, for results that go back to
// the host. Valid until the next scratch() call on this context; stream-ordered like everything
// else, so a buffer replaced by a larger one is freed only after the work queued before.
void* scratch(const Context& ctx, std::size_t bytes);

// y[n, c, hw] = act(y + b[c]) with act = relu or identity; b may be null (act only).
void bias_act_nchw(cudaStream_t stream, float* y, const float* b, std::int64_t n, std::int64_t c,
                   std::int64_t hw, bool relu);
// db[j] (+)= sum over i of dy[i, j] for dy[n, m], rows added in order from 0 (or from db when
// accumulate): bitwise the CPU backend's loop. dy is f32, bf16 or f16 (`format`), each value
// widened exactly, so a half dy sums as the CPU sums its widened copy.
void bias_grad_rows(cudaStream_t stream, const void* dy, DType format, float* db, std::int64_t n,
                    std::int64_t m, bool accumulate);
// db[c] (+)= sum over (n, hw) of dy[n, c, hw], in a fixed order that does not depend on the GPU;
// dy as for bias_grad_rows.
void bias_grad_nchw(cudaStream_t stream, const void* dy, DType format, float* db, std::int64_t n,
                    std::int64_t c, std::int64_t hw, bool accumulate);

}  // namespace dpt::kernels::cuda
