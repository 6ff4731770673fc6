// SPDX-License-Identifier: MIT
// A readable listing of any HDF5 file (dataset or checkpoint) for `dpt-data inspect`, so apps need
// no HDF5 header of their own.
#pragma once

#include <string>

namespace dpt::io {

// Every group and dataset under / in name order, with shape, dtype, chunking and filters, and the
// attributes of each object (short values printed, long ones abbreviated). Opening errors are the
// same IoErrors as DatasetSplit::load's.
std::string inspect_file(const std::string& path);

}  // namespace dpt::io
