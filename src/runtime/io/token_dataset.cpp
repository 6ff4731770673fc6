// SPDX-License-Identifier: MIT
// Text datasets (docs/formats.md, "Text datasets"): loading and validating a split's tokens and
// the vocabulary, and writing a file with both splits.
#include <algorithm>
#include <optional>

#include "runtime/check.h"
#include "runtime/io/dataset.h"
#include "runtime/io/dataset_internal.h"
#include "runtime/io/h5.h"
#include "runtime/memory.h"

namespace dpt::io {
namespace {

// 64 Ki tokens per chunk (128 KiB): well inside HDF5's chunk cache, and a corrupt chunk names a
// small range of positions.
constexpr std::int64_t kTokenChunkRows = 65536;
constexpr std::int64_t kMaxVocab = 65536;  // ids are uint16

Vocabulary read_vocabulary(hid_t file, const std::string& path) {
  for (const char* name : {"tokenizer", "vocab_size", "vocabulary"}) {
    DPT_IO_CHECK(h5::has_attribute(file, name), path, ": attribute '", name,
                 "' of / is missing: expected it in a text dataset (kind \"text\")");
  }
  const std::string name = h5::read_attribute_string(file, "tokenizer");
  const std::optional<Tokenizer> tokenizer = parse_tokenizer(name);
  DPT_IO_CHECK(tokenizer.has_value(), path,
               ": attribute 'tokenizer' of /: expected \"char\" or \"byte\", found \"", name, "\"");
  const std::int64_t vocab_size = h5::read_attribute_int(file, "vocab_size");
  DPT_IO_CHECK(vocab_size >= 1 && vocab_size <= kMaxVocab, path,
               ": attribute 'vocab_size' of /: expected an integer in [1, ", kMaxVocab,
               "], found ", vocab_size);
  const std::vector<std::string> entries = h5::read_attribute_strings(file, "vocabulary");
  DPT_IO_CHECK(static_cast<std::int64_t>(entries.size()) == vocab_size, path,
               ": attribute 'vocabulary' of /: expected ", vocab_size,
               " entries (vocab_size), found ", entries.size());
  return Vocabulary::from_stored(*tokenizer, entries,
                                 path + ": attribute 'vocabulary' of /");
}

}  // namespace

DatasetSplit DatasetSplit::load_tokens(const std::string& path, const std::string& split,
                                       std::int64_t limit, std::int64_t block_size) {
  DPT_CHECK(block_size >= 0, "block size must be >= 0, got ", block_size);
  DPT_CHECK(block_size > 0, path,
            " is a text dataset: a block size (tokens per training window) is required");
  const H5Handle file = h5::open_file_read(path);
  DatasetSplit out;
  out.path_ = path;
  out.split_ = split;
  out.kind_ = DatasetKind::kTokens;
  out.block_size_ = block_size;
  out.vocabulary_ = read_vocabulary(file.get(), path);
  out.meta_.num_classes = out.vocabulary_.size();

  const std::string group = "/" + split;
  const std::string name = group + "/tokens";
  DPT_IO_CHECK(h5::is_group(file.get(), group), path, ": group ", group,
               " is missing: expected ", name);
  detail::check_dataset(file.get(), path, name, "uint16 [N]");
  const H5Handle tokens = h5::open_dataset(file.get(), name);
  const h5::DatasetInfo info = h5::dataset_info(tokens.get());
  DPT_IO_CHECK(info.shape.size() == 1, path, ": dataset ", name, ": expected rank 1 [N], found rank ",
               info.shape.size(), " ", dpt::to_string(info.shape));
  DPT_IO_CHECK(info.dtype == "uint16", path, ": dataset ", name, ": expected dtype uint16, found ",
               info.dtype);
  const std::int64_t n = info.shape[0];
  // A window is T inputs and T next-token labels: T + 1 tokens.
  DPT_IO_CHECK(n > block_size, "block size ", block_size, " is larger than split ", group, " of ",
               path, " (", n, " tokens): expected at least ", block_size + 1, " tokens");

  // limit windows of evaluation cover limit * T + 1 tokens (overflow-safe: limit < n here or kept).
  const std::int64_t kept =
      limit > 0 && limit <= (n - 1) / block_size ? limit * block_size + 1 : n;
  h5::checked_read_numel(tokens.get(), info, kept, sizeof(std::uint16_t));
  check_fits_in_memory(static_cast<std::uint64_t>(kept) * sizeof(std::uint16_t),
                       dpt::detail::str("file ", path, ", dataset ", name, " (", kept,
                                        " uint16 tokens)"));
  out.tokens_.resize(static_cast<std::size_t>(kept));
  detail::read_samples(tokens.get(), path, name, info, kept, H5T_NATIVE_UINT16, out.tokens_.data(),
                       sizeof(std::uint16_t));
  const int vocab = out.vocabulary_.size();
  const auto bad = std::find_if(out.tokens_.begin(), out.tokens_.end(),
                                [vocab](std::uint16_t t) { return t >= vocab; });
  DPT_IO_CHECK(bad == out.tokens_.end(), path, ": dataset ", name, ": token at position ",
               bad - out.tokens_.begin(), " is ", bad == out.tokens_.end() ? 0 : int{*bad},
               ", expected in [0, ", vocab, ") (vocab_size)");
  return out;
}

void write_token_dataset(const std::string& path, const Vocabulary& vocabulary,
                         const std::vector<std::uint16_t>& train,
                         const std::vector<std::uint16_t>& test) {
  DPT_CHECK(vocabulary.size() >= 1, "write_token_dataset: empty vocabulary");
  for (const auto& [name, tokens] :
       {std::pair<const char*, const std::vector<std::uint16_t>*>{"train", &train},
        std::pair<const char*, const std::vector<std::uint16_t>*>{"test", &test}}) {
    for (std::size_t i = 0; i < tokens->size(); ++i) {
      DPT_CHECK((*tokens)[i] < vocabulary.size(), "write_token_dataset: ", name, " token ", i,
                " is ", (*tokens)[i], ", expected in [0, ", vocabulary.size(), ")");
    }
  }
  const std::vector<std::string> entries = vocabulary.stored_entries();
  const std::size_t payload = (train.size() + test.size()) * sizeof(std::uint16_t);
  h5::write_file_then_rename(path, payload, [&](hid_t file) {
    detail::write_dataset_header(file, DatasetKind::kTokens);
    h5::write_attribute_string(file, "tokenizer", tokenizer_name(vocabulary.tokenizer()));
    h5::write_attribute_int(file, "vocab_size", vocabulary.size());
    h5::write_attribute_strings(file, "vocabulary", entries);
    for (const auto& [name, tokens] :
         {std::pair<const char*, const std::vector<std::uint16_t>*>{"train", &train},
          std::pair<const char*, const std::vector<std::uint16_t>*>{"test", &test}}) {
      const H5Handle group = h5::create_group(file, name);
      h5::write_dataset<std::uint16_t>(group.get(), "tokens",
                                       {static_cast<std::int64_t>(tokens->size())}, tokens->data(),
                                       {.fletcher32 = true, .chunk_rows = kTokenChunkRows});
    }
  });
}

}  // namespace dpt::io
