// SPDX-License-Identifier: MIT
// dpt-data import-text end to end: files concatenated in order, the character or byte vocabulary,
// the split by position, and invalid input named by file and byte offset.
#include <algorithm>
#include <fstream>

#include "runtime/io/dataset.h"
#include "testing/test_util.h"

namespace dpt::io {
namespace {

class ImportTextTest : public ::testing::Test {
 protected:
  std::string write(const std::string& name, const std::string& bytes) const {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  int run(const std::string& args, std::string* output) const {
    return dpt::test::run_command(
        (dpt::test::bin_dir() / "dpt-data").string() + " import-text " + args, output);
  }
  std::string out() const { return (dir_ / "text.h5").string(); }
  // Token i of the concatenated corpus, by split.
  static std::vector<std::uint16_t> all_tokens(const std::string& file) {
    std::vector<std::uint16_t> tokens = DatasetSplit::load(file, "train", 0, 1).tokens();
    const std::vector<std::uint16_t> test = DatasetSplit::load(file, "test", 0, 1).tokens();
    tokens.insert(tokens.end(), test.begin(), test.end());
    return tokens;
  }
  dpt::test::TempDir dir_;
};

TEST_F(ImportTextTest, CharLevelConcatenatesInOrderAndSplitsByPosition) {
  // Two files, given in the opposite of name order: the corpus is b.txt then a.txt.
  const std::string first = write("b.txt", "hello, world\n");     // 13 characters
  const std::string second = write("a.txt", "caf\xc3\xa9 ok\n");  // 8 characters, 9 bytes
  std::string output;
  ASSERT_EQ(run(out() + " " + first + " " + second, &output), 0) << output;
  EXPECT_NE(output.find("21 tokens from 2 file(s), tokenizer char, vocab_size 15, train 18, test 3"),
            std::string::npos) << output;  // floor(21 * 0.9) = 18

  const DatasetSplit train = DatasetSplit::load(out(), "train", 0, 4);
  EXPECT_EQ(train.tokenizer(), Tokenizer::kChar);
  const std::vector<std::string> expected_vocab = {"\n", " ", ",", "a", "c", "d", "e", "f", "h",
                                                   "k", "l", "o", "r", "w", "\xc3\xa9"};
  EXPECT_EQ(train.vocabulary().texts(), expected_vocab);  // sorted by code point
  const std::vector<std::uint16_t> tokens = all_tokens(out());
  std::vector<std::int32_t> ids(tokens.begin(), tokens.end());
  EXPECT_EQ(train.vocabulary().decode(ids.data(), ids.size()), "hello, world\ncaf\xc3\xa9 ok\n");
  EXPECT_EQ(train.num_tokens(), 18);
  EXPECT_EQ(DatasetSplit::load(out(), "test", 0, 2).num_tokens(), 3);  // "ok\n"
}

TEST_F(ImportTextTest, ByteLevelKeepsEveryByteAndHonoursTheValFraction) {
  std::string bytes;
  for (int i = 0; i < 40; ++i) bytes += static_cast<char>((i * 37) % 256);  // not UTF-8
  const std::string file = write("bin.dat", bytes);
  std::string output;
  ASSERT_EQ(run(out() + " " + file + " --tokenizer byte --val-fraction 0.25", &output), 0) << output;
  EXPECT_NE(output.find("40 tokens from 1 file(s), tokenizer byte, vocab_size 256, train 30, test 10"),
            std::string::npos) << output;
  const DatasetSplit train = DatasetSplit::load(out(), "train", 0, 4);
  EXPECT_EQ(train.tokenizer(), Tokenizer::kByte);
  EXPECT_EQ(train.vocabulary().size(), 256);
  const std::vector<std::uint16_t> tokens = all_tokens(out());
  ASSERT_EQ(tokens.size(), 40u);
  for (int i = 0; i < 40; ++i) EXPECT_EQ(tokens[static_cast<std::size_t>(i)], (i * 37) % 256) << i;
}

TEST_F(ImportTextTest, InvalidUtf8NamesTheFileAndByteOffset) {
  const std::string good = write("good.txt", "fine text\n");
  const std::string bad = write("bad.txt", "abc\xc3\xa9xy\xff z");
  std::string output;
  EXPECT_NE(run(out() + " " + good + " " + bad, &output), 0);
  EXPECT_EQ(output.rfind("dpt-data: error: ", 0), 0u) << output;
  EXPECT_NE(output.find(bad + ": invalid UTF-8 at byte offset 7 (byte \\xff)"), std::string::npos)
      << output;
  EXPECT_EQ(std::count(output.begin(), output.end(), '\n'), 1) << output;
  EXPECT_FALSE(std::filesystem::exists(out()));
  // The same bytes are fine at byte level.
  EXPECT_EQ(run(out() + " " + good + " " + bad + " --tokenizer byte", &output), 0) << output;
}

TEST_F(ImportTextTest, RejectsBadOptionsAndTooLittleText) {
  const std::string file = write("t.txt", "abcdefghij");
  std::string output;
  EXPECT_NE(run(out() + " " + file + " --tokenizer word", &output), 0);
  EXPECT_NE(output.find("--tokenizer"), std::string::npos) << output;
  EXPECT_NE(run(out() + " " + file + " --val-fraction 1", &output), 0);
  EXPECT_NE(output.find("--val-fraction must be in (0, 1), got 1"), std::string::npos) << output;
  EXPECT_NE(run(out() + " " + file + " --val-fraction 0.05", &output), 0);  // test: 1 token
  EXPECT_NE(output.find("10 tokens split 9 / 1"), std::string::npos) << output;
  EXPECT_NE(run(out() + " " + (dir_ / "missing.txt").string(), &output), 0);
  EXPECT_NE(output.find("cannot open " + (dir_ / "missing.txt").string()), std::string::npos) << output;
}

}  // namespace
}  // namespace dpt::io
