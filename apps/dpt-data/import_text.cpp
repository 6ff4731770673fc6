// SPDX-License-Identifier: MIT
// Tokenises the concatenated files (characters or bytes), splits by position and writes the file.
#include "import_text.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>

#include "runtime/check.h"
#include "runtime/io/dataset.h"
#include "runtime/timer.h"

namespace dpt::data {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  DPT_CHECK_KIND(ErrorKind::kIo, in.good(), "cannot open ", path, " for reading");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  DPT_CHECK_KIND(ErrorKind::kIo, !in.bad(), "cannot read ", path);
  return bytes;
}

}  // namespace

void import_text(const ImportTextOptions& o) {
  const Stopwatch watch;
  DPT_CHECK(!o.files.empty(), "import-text: no input files");
  DPT_CHECK(o.val_fraction > 0 && o.val_fraction < 1, "import-text: --val-fraction must be in (0, 1), got ",
            o.val_fraction);

  // Character-level: each file is decoded on its own, so an invalid sequence is reported with the
  // file and its byte offset there (a character split across two files is invalid too).
  std::vector<std::uint32_t> units;  // code points or bytes, in corpus order
  for (const std::string& path : o.files) {
    const std::string bytes = read_file(path);
    if (o.tokenizer == io::Tokenizer::kByte) {
      for (char c : bytes) units.push_back(static_cast<unsigned char>(c));
    } else {
      for (char32_t cp : io::decode_utf8(bytes, path)) units.push_back(cp);
    }
  }
  const io::Vocabulary vocabulary =
      o.tokenizer == io::Tokenizer::kByte
          ? io::Vocabulary::bytes()
          : io::Vocabulary::chars(std::vector<char32_t>(units.begin(), units.end()));

  const auto n = static_cast<std::int64_t>(units.size());
  // As nanoGPT's shakespeare_char: train = data[:int(n * 0.9)], val = the rest.
  const auto n_train = static_cast<std::int64_t>(std::floor(static_cast<double>(n) * (1.0 - o.val_fraction)));
  DPT_CHECK_KIND(ErrorKind::kIo, n_train >= 2 && n - n_train >= 2, "import-text: ", n,
                 " tokens split ", n_train, " / ", n - n_train,
                 " by --val-fraction ", o.val_fraction,
                 ": expected at least 2 tokens (one window of 1) in each split");
  std::vector<std::uint16_t> train, test;
  train.reserve(static_cast<std::size_t>(n_train));
  test.reserve(static_cast<std::size_t>(n - n_train));
  for (std::int64_t i = 0; i < n; ++i) {
    const std::uint32_t unit = units[static_cast<std::size_t>(i)];
    const auto id = static_cast<std::uint16_t>(
        o.tokenizer == io::Tokenizer::kByte ? unit : static_cast<std::uint32_t>(vocabulary.id_of(unit)));
    (i < n_train ? train : test).push_back(id);
  }
  io::write_token_dataset(o.out, vocabulary, train, test);
  std::printf("wrote %s: %lld tokens from %zu file(s), tokenizer %s, vocab_size %d, "
              "train %lld, test %lld (%.2f s)\n",
              o.out.c_str(), static_cast<long long>(n), o.files.size(),
              io::tokenizer_name(o.tokenizer), vocabulary.size(),
              static_cast<long long>(n_train), static_cast<long long>(n - n_train),
              watch.elapsed_s());
}

}  // namespace dpt::data
