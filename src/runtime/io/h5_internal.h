// SPDX-License-Identifier: MIT
// Dataspace helpers the dataset and attribute files of runtime/io share; not part of h5.h.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <vector>

namespace dpt::io::h5 {

// A shape as HDF5 dimensions; a negative extent is an invalid-argument error.
std::vector<hsize_t> to_hsize(const std::vector<std::int64_t>& shape);
// The extent of a simple dataspace ([] for a scalar).
std::vector<std::int64_t> space_shape(hid_t space);

}  // namespace dpt::io::h5
