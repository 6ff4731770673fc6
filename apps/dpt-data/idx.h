// SPDX-License-Identifier: MIT
// Reader for the IDX format of MNIST-style datasets (big-endian header, uint8 payload), gzip'd
// or plain, with errors that name the file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dpt::data {

struct IdxArray {
  std::vector<std::int64_t> dims;  // e.g. [60000, 28, 28] for images, [60000] for labels
  std::vector<std::uint8_t> values;
};

// Reads an IDX file of unsigned bytes with `expected_rank` dimensions (magic 0x0000 08 <rank>).
// Throws an IoError naming `path` on a bad magic number, a short or over-long payload, or a
// gzip error.
IdxArray read_idx_u8(const std::string& path, int expected_rank);

}  // namespace dpt::data
