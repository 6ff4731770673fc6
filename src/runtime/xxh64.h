// SPDX-License-Identifier: MIT
// XXH64 (Yann Collet's xxHash, 64-bit variant): a fast non-cryptographic checksum, here for the
// content of what ranks must agree on (the dataset they read). It tells accidental differences
// apart, not forgeries. Bytes are read little-endian, so the value does not depend on the host.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dpt {

// XXH64 of `size` bytes at `data` with `seed`; equal to the reference implementation's XXH64().
// Several buffers chain through the seed: xxh64(b, nb, xxh64(a, na)).
std::uint64_t xxh64(const void* data, std::size_t size, std::uint64_t seed = 0);

}  // namespace dpt
