// SPDX-License-Identifier: MIT
// HDF5's metadata checksum (Jenkins' lookup3), and the repair of the superblock checksum of a
// file image; used by the in-memory file writer (h5_file_image.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace dpt::io::h5 {

// Bob Jenkins' lookup3 hashlittle() with initial value 0, the checksum of HDF5's metadata (file
// format specification, "Checksums"); bytes are read little-endian, so the result does not depend
// on the host.
std::uint32_t lookup3(const unsigned char* bytes, std::size_t length);

// H5Fget_file_image() of a file open for writing clears the superblock's "open for write" flags
// in the image but keeps the checksum of the flagged superblock, so the image fails its own
// checksum when read back (HDF5 1.10). Recompute it: superblock versions 2 and 3 are the
// signature (8 bytes), version, offset size, length size, flags, four addresses, checksum. Images
// of other superblock versions (or too short to hold one) are left as they are.
void fix_superblock_checksum(std::vector<char>& image);

}  // namespace dpt::io::h5
