// SPDX-License-Identifier: MIT
// lookup3 and the superblock checksum repair (see h5_checksum.h).
#include "runtime/io/h5_checksum.h"

#include <cstring>

namespace dpt::io::h5 {

std::uint32_t lookup3(const unsigned char* bytes, std::size_t length) {
  const unsigned char* k = bytes;
  auto rot = [](std::uint32_t x, int r) { return (x << r) | (x >> (32 - r)); };
  auto word = [](const unsigned char* p) {
    return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
           static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
  };
  std::uint32_t a, b, c;
  a = b = c = 0xdeadbeefu + static_cast<std::uint32_t>(length);
  // clang-format off: the mixing rounds read best as the reference writes them
  while (length > 12) {
    a += word(k);
    b += word(k + 4);
    c += word(k + 8);
    a -= c;
    a ^= rot(c, 4);
    c += b;
    b -= a;
    b ^= rot(a, 6);
    a += c;
    c -= b;
    c ^= rot(b, 8);
    b += a;
    a -= c;
    a ^= rot(c, 16);
    c += b;
    b -= a;
    b ^= rot(a, 19);
    a += c;
    c -= b;
    c ^= rot(b, 4);
    b += a;
    length -= 12;
    k += 12;
  }
  if (length == 0) return c;
  unsigned char tail[12] = {};
  std::memcpy(tail, k, length);
  a += word(tail);
  b += word(tail + 4);
  c += word(tail + 8);
  c ^= b;
  c -= rot(b, 14);
  a ^= c;
  a -= rot(c, 11);
  b ^= a;
  b -= rot(a, 25);
  c ^= b;
  c -= rot(b, 16);
  a ^= c;
  a -= rot(c, 4);
  b ^= a;
  b -= rot(a, 14);
  c ^= b;
  c -= rot(b, 24);
  // clang-format on
  return c;
}

void fix_superblock_checksum(std::vector<char>& image) {
  static constexpr unsigned char kSignature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  auto* bytes = reinterpret_cast<unsigned char*>(image.data());
  if (image.size() < 12 || std::memcmp(bytes, kSignature, 8) != 0 || bytes[8] < 2) return;
  const std::size_t checked = 12 + 4 * static_cast<std::size_t>(bytes[9]);
  if (image.size() < checked + 4) return;
  const std::uint32_t sum = lookup3(bytes, checked);
  for (int i = 0; i < 4; ++i) bytes[checked + i] = static_cast<unsigned char>(sum >> (8 * i));
}

}  // namespace dpt::io::h5
