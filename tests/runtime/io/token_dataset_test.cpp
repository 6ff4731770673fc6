// SPDX-License-Identifier: MIT
// Text datasets: the vocabulary (UTF-8 decoding, stored escapes, validation), a written file
// round-trips, and every malformed file or bad block size is an IoError naming what is wrong.
#include <hdf5.h>

#include <functional>
#include <optional>

#include "runtime/io/dataset.h"
#include "runtime/io/h5.h"
#include "runtime/io/vocabulary.h"
#include "testing/test_util.h"

namespace dpt::io {
namespace {

::testing::AssertionResult error_with(const std::function<void()>& f,
                                      const std::vector<std::string>& parts,
                                      std::optional<ErrorKind> kind = ErrorKind::kIo) {
  try {
    f();
  } catch (const Error& e) {
    const std::string what = e.what();
    if (kind && e.kind() != *kind) {
      return ::testing::AssertionFailure() << "kind " << to_string(e.kind()) << ": " << what;
    }
    for (const std::string& part : parts) {
      if (what.find(part) == std::string::npos) {
        return ::testing::AssertionFailure() << "message lacks \"" << part << "\": " << what;
      }
    }
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "no exception";
}

TEST(Utf8, DecodesAndReportsTheOffsetOfAnInvalidSequence) {
  // "aé€😀": 1, 2, 3 and 4 bytes.
  EXPECT_EQ(decode_utf8("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", "f"),
            (std::vector<char32_t>{U'a', 0xe9, 0x20ac, 0x1f600}));
  for (char32_t cp : {char32_t{0x41}, char32_t{0xe9}, char32_t{0x20ac}, char32_t{0x1f600}}) {
    EXPECT_EQ(decode_utf8(encode_utf8(cp), "f"), std::vector<char32_t>{cp});
  }
  EXPECT_TRUE(error_with([] { decode_utf8("abc\x80", "x.txt"); },
                         {"x.txt", "invalid UTF-8 at byte offset 3", "\\x80"}));
  EXPECT_TRUE(error_with([] { decode_utf8("ab\xc3", "x.txt"); }, {"byte offset 2"}));  // truncated
  EXPECT_TRUE(error_with([] { decode_utf8("\xc0\xaf", "x.txt"); }, {"byte offset 0"}));  // overlong
  EXPECT_TRUE(error_with([] { decode_utf8("a\xed\xa0\x80", "x.txt"); }, {"byte offset 1"}));  // surrogate
  EXPECT_TRUE(error_with([] { decode_utf8("\xf4\x90\x80\x80", "x.txt"); }, {"byte offset 0"}));  // > U+10FFFF
}

TEST(VocabularyTest, CharsAreSortedDistinctCodePointsAndEncodeDecodeRoundTrips) {
  const Vocabulary v = Vocabulary::chars({U'b', U'a', 0xe9, U'b', U'\n'});
  EXPECT_EQ(v.tokenizer(), Tokenizer::kChar);
  EXPECT_EQ(v.texts(), (std::vector<std::string>{"\n", "a", "b", "\xc3\xa9"}));
  const std::vector<std::int32_t> ids = v.encode("ab\xc3\xa9\na", "prompt");
  EXPECT_EQ(ids, (std::vector<std::int32_t>{1, 2, 3, 0, 1}));
  EXPECT_EQ(v.decode(ids.data(), ids.size()), "ab\xc3\xa9\na");
  EXPECT_TRUE(error_with([&] { v.encode("abz", "prompt"); },
                         {"prompt", "U+007A 'z'", "byte offset 2", "not in the vocabulary"}));
  EXPECT_EQ(v.id_of(U'z'), -1);
}

TEST(VocabularyTest, StoredEntriesEscapeNulAndNonAsciiBytesAndReadBack) {
  const Vocabulary bytes = Vocabulary::bytes();
  ASSERT_EQ(bytes.size(), 256);
  const std::vector<std::string> stored = bytes.stored_entries();
  EXPECT_EQ(stored[0], "\\x00");
  EXPECT_EQ(stored[10], "\n");
  EXPECT_EQ(stored['A'], "A");
  EXPECT_EQ(stored[127], "\x7f");
  EXPECT_EQ(stored[128], "\\x80");
  EXPECT_EQ(stored[255], "\\xff");
  EXPECT_EQ(Vocabulary::from_stored(Tokenizer::kByte, stored, "v").texts(), bytes.texts());
  EXPECT_EQ(bytes.text(200), std::string(1, static_cast<char>(200)));

  const Vocabulary chars = Vocabulary::chars({0, U'a', 0xe9});
  EXPECT_EQ(chars.stored_entries(), (std::vector<std::string>{"\\x00", "a", "\xc3\xa9"}));
  EXPECT_EQ(Vocabulary::from_stored(Tokenizer::kChar, chars.stored_entries(), "v").texts(),
            chars.texts());
  EXPECT_EQ(chars.text(0), std::string(1, '\0'));
}

TEST(VocabularyTest, FromStoredRejectsWhatTheTokenizerDoesNotAllow) {
  std::vector<std::string> bytes = Vocabulary::bytes().stored_entries();
  bytes[66] = "C";
  EXPECT_TRUE(error_with([&] { Vocabulary::from_stored(Tokenizer::kByte, bytes, "f.h5: vocabulary"); },
                         {"f.h5: vocabulary", "entry 66", "expected byte \\x42", "found \"C\""}));
  bytes.pop_back();
  EXPECT_TRUE(error_with([&] { Vocabulary::from_stored(Tokenizer::kByte, bytes, "v"); },
                         {"expected 256 entries", "found 255"}));
  EXPECT_TRUE(error_with([] { Vocabulary::from_stored(Tokenizer::kChar, {"a", "bc"}, "v"); },
                         {"entry 1", "expected one UTF-8 character", "found \"bc\""}));
  EXPECT_TRUE(error_with([] { Vocabulary::from_stored(Tokenizer::kChar, {"b", "a"}, "v"); },
                         {"entry 1", "ascending order"}));
  EXPECT_TRUE(error_with([] { Vocabulary::from_stored(Tokenizer::kChar, {"a", "a"}, "v"); },
                         {"entry 1", "ascending order"}));
  EXPECT_TRUE(error_with([] { Vocabulary::from_stored(Tokenizer::kChar, {}, "v"); },
                         {"expected 1 to 65536 entries", "found 0"}));
}

std::vector<std::uint16_t> iota_tokens(std::size_t n, int vocab) {
  std::vector<std::uint16_t> out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::uint16_t>((i * 7 + 3) % vocab);
  return out;
}

class TokenDatasetTest : public ::testing::Test {
 protected:
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  dpt::test::TempDir dir_;
};

TEST_F(TokenDatasetTest, RoundTripsCharAndByteFiles) {
  for (const Vocabulary& v : {Vocabulary::chars({U'\n', U' ', U'a', U'b', 0xe9}), Vocabulary::bytes()}) {
    SCOPED_TRACE(tokenizer_name(v.tokenizer()));
    const auto train = iota_tokens(101, v.size());
    const auto test = iota_tokens(33, v.size());
    const std::string file = path(std::string("t_") + tokenizer_name(v.tokenizer()) + ".h5");
    write_token_dataset(file, v, train, test);
    const DatasetSplit split = DatasetSplit::load(file, "train", 0, 8);
    EXPECT_EQ(split.kind(), DatasetKind::kTokens);
    EXPECT_EQ(split.tokens(), train);
    EXPECT_EQ(split.num_tokens(), 101);
    EXPECT_EQ(split.block_size(), 8);
    EXPECT_EQ(split.size(), 12);  // (101 - 1) / 8
    EXPECT_EQ(split.sample_shape(), Shape{8});
    EXPECT_EQ(split.meta().num_classes, v.size());
    EXPECT_EQ(split.tokenizer(), v.tokenizer());
    EXPECT_EQ(split.vocabulary().texts(), v.texts());
    EXPECT_EQ(split.identity(), file + ":/train tokens=101 T=8 windows=12 vocab=" +
                                    std::to_string(v.size()) + " tokenizer=" +
                                    tokenizer_name(v.tokenizer()));
    EXPECT_EQ(DatasetSplit::load(file, "test", 0, 8).tokens(), test);

    // The attributes as any HDF5 reader sees them.
    const H5Handle h = h5::open_file_read(file);
    EXPECT_EQ(h5::read_attribute_string(h.get(), "kind"), "text");
    EXPECT_EQ(h5::read_attribute_string(h.get(), "tokenizer"), tokenizer_name(v.tokenizer()));
    EXPECT_EQ(h5::read_attribute_int(h.get(), "vocab_size"), v.size());
    EXPECT_EQ(h5::read_attribute_strings(h.get(), "vocabulary"), v.stored_entries());
    EXPECT_FALSE(h5::has_attribute(h.get(), "num_classes"));
  }
}

TEST_F(TokenDatasetTest, LimitKeepsTheFirstLimitWindowsOfTokens) {
  const Vocabulary v = Vocabulary::bytes();
  const auto train = iota_tokens(101, 256);
  write_token_dataset(path("t.h5"), v, train, train);
  const DatasetSplit limited = DatasetSplit::load(path("t.h5"), "train", 3, 8);
  EXPECT_EQ(limited.num_tokens(), 25);  // 3 * 8 + 1
  EXPECT_EQ(limited.size(), 3);
  EXPECT_EQ(limited.tokens(), std::vector<std::uint16_t>(train.begin(), train.begin() + 25));
  EXPECT_EQ(DatasetSplit::load(path("t.h5"), "train", 1000, 8).num_tokens(), 101);  // all
}

TEST_F(TokenDatasetTest, ChecksumCoversTokensVocabularyAndBlockSize) {
  const auto tokens = iota_tokens(50, 5);
  write_token_dataset(path("a.h5"), Vocabulary::chars({U'a', U'b', U'c', U'd', U'e'}), tokens, tokens);
  write_token_dataset(path("b.h5"), Vocabulary::chars({U'a', U'b', U'c', U'd', U'f'}), tokens, tokens);
  auto changed = tokens;
  changed[49] = static_cast<std::uint16_t>((changed[49] + 1) % 5);
  write_token_dataset(path("c.h5"), Vocabulary::chars({U'a', U'b', U'c', U'd', U'e'}), changed, tokens);
  const auto sum = [&](const std::string& name, std::int64_t t) {
    return DatasetSplit::load(path(name), "train", 0, t).content_checksum();
  };
  EXPECT_EQ(sum("a.h5", 4), sum("a.h5", 4));
  EXPECT_NE(sum("a.h5", 4), sum("b.h5", 4));  // one vocabulary entry
  EXPECT_NE(sum("a.h5", 4), sum("c.h5", 4));  // the last token
  EXPECT_NE(sum("a.h5", 4), sum("a.h5", 5));  // the block size
}

TEST_F(TokenDatasetTest, BlockSizeMustBeGivenAndFitTheSplit) {
  write_token_dataset(path("t.h5"), Vocabulary::bytes(), iota_tokens(100, 256), iota_tokens(40, 256));
  EXPECT_TRUE(error_with([&] { DatasetSplit::load(path("t.h5"), "test", 0, 64); },
                         {"block size 64 is larger than split /test of " + path("t.h5") +
                          " (40 tokens)"}));
  EXPECT_TRUE(error_with([&] { DatasetSplit::load(path("t.h5"), "test", 0, 40); },
                         {"(40 tokens): expected at least 41 tokens"}));
  EXPECT_NO_THROW(DatasetSplit::load(path("t.h5"), "test", 0, 39));
  EXPECT_TRUE(error_with([&] { DatasetSplit::load(path("t.h5"), "train"); },
                         {path("t.h5"), "is a text dataset", "block size"},
                         ErrorKind::kInvalidArgument));
  // Image files ignore it.
  dpt::test::write_quadrants_dataset(path("img.h5"), 10, 5);
  EXPECT_EQ(DatasetSplit::load(path("img.h5"), "train", 0, 64).size(), 10);
  EXPECT_EQ(DatasetSplit::load(path("img.h5"), "train").kind(), DatasetKind::kImages);
  EXPECT_EQ(DatasetSplit::load(path("img.h5"), "train").sample_shape(), (Shape{1, 8, 8}));
}

// Writes a fixed-length string attribute of width 3 with the given padding.
void write_padded(hid_t loc, const char* name, H5T_str_t pad, const char (&data)[2][3]) {
  const H5Handle type(H5Tcopy(H5T_C_S1));
  ASSERT_GE(H5Tset_size(type.get(), 3), 0);
  ASSERT_GE(H5Tset_strpad(type.get(), pad), 0);
  const hsize_t n = 2;
  const H5Handle space(H5Screate_simple(1, &n, nullptr));
  const H5Handle attr(H5Acreate2(loc, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT));
  ASSERT_GE(H5Awrite(attr.get(), type.get(), data), 0);
}

TEST_F(TokenDatasetTest, FixedLengthStringsKeepTrailingSpacesUnlessSpacePadded) {
  const H5Handle file = h5::create_file(path("s.h5"));
  write_padded(file.get(), "nul", H5T_STR_NULLPAD, {{' ', '\0', '\0'}, {'a', ' ', '\0'}});
  write_padded(file.get(), "space", H5T_STR_SPACEPAD, {{'a', ' ', ' '}, {'b', 'c', ' '}});
  EXPECT_EQ(h5::read_attribute_strings(file.get(), "nul"), (std::vector<std::string>{" ", "a "}));
  EXPECT_EQ(h5::read_attribute_strings(file.get(), "space"), (std::vector<std::string>{"a", "bc"}));
}

// A hand-built text file: the good layout, with any piece replaced or removed.
struct TokenFileSpec {
  std::optional<std::string> kind = "text";
  std::optional<std::string> tokenizer = "char";
  std::optional<std::int64_t> vocab_size = 3;
  std::optional<std::vector<std::string>> vocabulary = std::vector<std::string>{"a", "b", "c"};
  std::vector<std::uint16_t> tokens = {0, 1, 2, 0, 1, 2, 0, 1, 2, 0};
  bool tokens_as_int32 = false;
};

void build(const std::string& path, const TokenFileSpec& spec) {
  const H5Handle file = h5::create_file(path);
  if (spec.kind) h5::write_attribute_string(file.get(), "kind", *spec.kind);
  if (spec.tokenizer) h5::write_attribute_string(file.get(), "tokenizer", *spec.tokenizer);
  if (spec.vocab_size) h5::write_attribute_int(file.get(), "vocab_size", *spec.vocab_size);
  if (spec.vocabulary) h5::write_attribute_strings(file.get(), "vocabulary", *spec.vocabulary);
  const H5Handle group = h5::create_group(file.get(), "train");
  const std::vector<std::int64_t> shape{static_cast<std::int64_t>(spec.tokens.size())};
  if (spec.tokens_as_int32) {
    const std::vector<std::int32_t> wide(spec.tokens.begin(), spec.tokens.end());
    h5::write_dataset<std::int32_t>(group.get(), "tokens", shape, wide.data());
  } else {
    h5::write_dataset<std::uint16_t>(group.get(), "tokens", shape, spec.tokens.data());
  }
}

TEST_F(TokenDatasetTest, HandBuiltFileWithH5HelpersLoads) {
  build(path("ok.h5"), {});
  const DatasetSplit split = DatasetSplit::load(path("ok.h5"), "train", 0, 3);
  EXPECT_EQ(split.size(), 3);
  EXPECT_EQ(split.vocabulary().texts(), (std::vector<std::string>{"a", "b", "c"}));
}

TEST_F(TokenDatasetTest, RejectsMalformedFiles) {
  const std::string f = path("bad.h5");
  const auto load = [&] { DatasetSplit::load(f, "train", 0, 3); };
  {
    TokenFileSpec spec;
    spec.tokens[7] = 3;
    build(f, spec);
    EXPECT_TRUE(error_with(load, {f, "/train/tokens", "token at position 7 is 3",
                                  "expected in [0, 3) (vocab_size)"}));
  }
  {
    TokenFileSpec spec;
    spec.kind = "audio";
    build(f, spec);
    EXPECT_TRUE(error_with(load, {f, "attribute 'kind'", "expected \"images\" or \"text\"",
                                  "found \"audio\""}));
  }
  for (const char* missing : {"tokenizer", "vocab_size", "vocabulary"}) {
    TokenFileSpec spec;
    if (std::string(missing) == "tokenizer") spec.tokenizer.reset();
    if (std::string(missing) == "vocab_size") spec.vocab_size.reset();
    if (std::string(missing) == "vocabulary") spec.vocabulary.reset();
    build(f, spec);
    EXPECT_TRUE(error_with(load, {f, std::string("attribute '") + missing + "' of / is missing"}))
        << missing;
  }
  {
    TokenFileSpec spec;
    spec.tokenizer = "word";
    build(f, spec);
    EXPECT_TRUE(error_with(load, {f, "'tokenizer'", "expected \"char\" or \"byte\"", "found \"word\""}));
  }
  {
    TokenFileSpec spec;
    spec.vocab_size = 4;
    build(f, spec);
    EXPECT_TRUE(error_with(load, {f, "'vocabulary'", "expected 4 entries (vocab_size), found 3"}));
  }
  {
    TokenFileSpec spec;
    spec.vocabulary = std::vector<std::string>{"a", "c", "b"};
    build(f, spec);
    EXPECT_TRUE(error_with(load, {f, "attribute 'vocabulary'", "entry 2", "ascending order"}));
  }
  {
    TokenFileSpec spec;
    spec.tokens_as_int32 = true;
    build(f, spec);
    EXPECT_TRUE(error_with(load, {f, "/train/tokens", "expected dtype uint16, found int32"}));
  }
  {
    build(f, {});
    EXPECT_TRUE(error_with([&] { DatasetSplit::load(f, "test", 0, 3); },
                           {f, "group /test is missing", "/test/tokens"}));
  }
}

}  // namespace
}  // namespace dpt::io
