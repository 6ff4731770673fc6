// SPDX-License-Identifier: MIT
// XXH64 against the reference: the published values for "", "abc" and the quick brown fox, and
// LLVM 14's xxHash64 (llvm/Support/xxhash.h, seed 0) on a fixed byte pattern at lengths around
// each branch of the algorithm (the 4- and 8-byte tails, the 32-byte stripes).
#include <gtest/gtest.h>

#include <cstdint>
#include <string_view>
#include <vector>

#include "runtime/xxh64.h"

namespace dpt {
namespace {

TEST(Xxh64, PublishedValues) {
  EXPECT_EQ(xxh64("", 0), 0xef46db3751d8e999ull);
  EXPECT_EQ(xxh64("abc", 3), 0x44bc2cf5ad770999ull);
  const std::string_view fox = "The quick brown fox jumps over the lazy dog";
  EXPECT_EQ(xxh64(fox.data(), fox.size()), 0x0b242d361fda71bcull);
}

TEST(Xxh64, AgreesWithLlvmAtEveryTailLength) {
  std::vector<unsigned char> bytes(100);
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<unsigned char>(i * 131 + 7);
  const std::pair<std::size_t, std::uint64_t> expected[] = {
      {1, 0xa96c7f0ce858bbb7ull},  {3, 0xbed43740ee6332bbull},  {4, 0xfa212ae44b3bb23dull},
      {7, 0x2744460dd675d2c0ull},  {8, 0x994b676b71ce94ddull},  {12, 0xb92f588ce720786eull},
      {31, 0x6711d55e306b5d8full}, {32, 0x07f7b8e3bc5d6e25ull}, {33, 0x09f85eeb4e1cbe9full},
      {63, 0xb7c9968c066cb6a5ull}, {64, 0x50d4159a0411632eull}, {100, 0x9ddada11d3dc2d8full}};
  for (const auto& [length, value] : expected) {
    EXPECT_EQ(xxh64(bytes.data(), length), value) << length << " bytes";
  }
}

TEST(Xxh64, SeedChainsBuffers) {
  const std::uint64_t a = xxh64("abc", 3);
  EXPECT_NE(xxh64("def", 3, a), xxh64("def", 3));
  EXPECT_NE(xxh64("def", 3, a), xxh64("abc", 3, xxh64("def", 3)));  // order matters
}

}  // namespace
}  // namespace dpt
