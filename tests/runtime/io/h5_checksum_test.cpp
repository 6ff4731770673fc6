// SPDX-License-Identifier: MIT
// lookup3, HDF5's metadata checksum, against the reference's published values and against HDF5's
// own implementation; and the superblock repair of in-memory file images.
#include "runtime/io/h5_checksum.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

// HDF5 exports its checksum (H5checksum.c) without declaring it in a public header.
extern "C" std::uint32_t H5_checksum_lookup3(const void* key, std::size_t length,
                                             std::uint32_t initval);

namespace dpt::io::h5 {
namespace {

std::uint32_t lookup3_of(const std::string& text) {
  return lookup3(reinterpret_cast<const unsigned char*>(text.data()), text.size());
}

// The self-test values of Jenkins' lookup3.c (driver5, initial value 0).
TEST(H5Checksum, Lookup3MatchesTheReferenceValues) {
  EXPECT_EQ(lookup3_of(""), 0xdeadbeefu);
  EXPECT_EQ(lookup3_of("Four score and seven years ago"), 0x17770551u);
}

// Every length up to five blocks, so each tail length and the "exactly 12 left" case are covered.
TEST(H5Checksum, Lookup3MatchesHdf5ForEveryTailLength) {
  std::vector<unsigned char> bytes(61);
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<unsigned char>(i * 37 + 11);
  for (std::size_t n = 0; n <= bytes.size(); ++n) {
    EXPECT_EQ(lookup3(bytes.data(), n), H5_checksum_lookup3(bytes.data(), n, 0)) << n << " bytes";
  }
}

// A version-2 superblock with 8-byte offsets: signature, version, sizes, flags, four addresses,
// then the checksum of the 44 bytes before it.
std::vector<char> superblock_v2() {
  std::vector<char> image(44 + 4 + 16, '\x5a');
  const unsigned char signature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  std::memcpy(image.data(), signature, 8);
  image[8] = 2;   // version
  image[9] = 8;   // size of offsets
  image[10] = 8;  // size of lengths
  image[11] = 0;  // flags
  return image;
}

TEST(H5Checksum, SuperblockChecksumIsRewrittenLittleEndian) {
  std::vector<char> image = superblock_v2();
  const std::vector<char> before = image;
  fix_superblock_checksum(image);
  const std::uint32_t expected = H5_checksum_lookup3(image.data(), 44, 0);
  std::uint32_t stored = 0;
  for (int i = 0; i < 4; ++i)
    stored |= std::uint32_t{static_cast<unsigned char>(image[44 + i])} << (8 * i);
  EXPECT_EQ(stored, expected);
  // Nothing else changes.
  EXPECT_TRUE(std::equal(image.begin(), image.begin() + 44, before.begin()));
  EXPECT_TRUE(std::equal(image.begin() + 48, image.end(), before.begin() + 48));
}

TEST(H5Checksum, OtherImagesAreLeftAlone) {
  std::vector<char> v0 = superblock_v2();
  v0[8] = 0;  // superblock version 0 has no checksum
  std::vector<char> not_hdf5 = superblock_v2();
  not_hdf5[1] = 'X';
  std::vector<char> truncated = superblock_v2();
  truncated.resize(46);  // the checksum would not fit
  for (std::vector<char>* image : {&v0, &not_hdf5, &truncated}) {
    const std::vector<char> before = *image;
    fix_superblock_checksum(*image);
    EXPECT_EQ(*image, before);
  }
}

}  // namespace
}  // namespace dpt::io::h5
