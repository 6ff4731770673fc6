// SPDX-License-Identifier: MIT
// A split (/train or /test) of a dptrain HDF5 dataset, validated and held in memory. Two kinds
// (docs/formats.md), told apart by the root attribute `kind`:
//  - images (no `kind`, or "images"): /<split>/images uint8 [N,C,H,W], /<split>/labels int32 [N];
//    root attributes num_classes, class_names, mean, std (pixel scale 0..1). Fashion-MNIST's train
//    split is 47 MB as uint8.
//  - text ("text"): /<split>/tokens uint16 [N]; root attributes tokenizer, vocab_size, vocabulary.
//    A sample is a window of block_size tokens (its labels: the next token of each).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/io/vocabulary.h"
#include "runtime/tensor.h"

namespace dpt::io {

enum class DatasetKind { kImages, kTokens };

struct DatasetMeta {
  int num_classes = 0;  // text: vocab_size (the model's output width either way)
  std::vector<std::string> class_names;
  float mean = 0.0f;  // normalisation: x = (pixel / 255 - mean) / std
  float std = 1.0f;
};

class DatasetSplit {
 public:
  // Reads and validates `split` of the file at `path`. Every problem is an IoError naming the file,
  // the dataset or attribute, what was expected and what was found: missing file or dataset, wrong
  // rank or dtype, images/labels count mismatch, label out of [0, num_classes), truncated or
  // corrupt file. limit > 0 keeps only the first `limit` samples.
  // Text files: block_size (T) is required (0 is an error naming the file) and the split must hold
  // at least T + 1 tokens; a token >= vocab_size is an error naming its position; limit > 0 keeps
  // the first limit * T + 1 tokens (`limit` windows of evaluation). Image files ignore block_size.
  static DatasetSplit load(const std::string& path, const std::string& split, std::int64_t limit = 0,
                           std::int64_t block_size = 0);

  const std::string& path() const { return path_; }
  const std::string& split() const { return split_; }
  DatasetKind kind() const { return kind_; }
  // Samples per epoch: images; for text the windows (num_tokens() - 1) / block_size().
  std::int64_t size() const {
    return kind_ == DatasetKind::kTokens
               ? (static_cast<std::int64_t>(tokens_.size()) - 1) / block_size_
               : static_cast<std::int64_t>(labels_.size());
  }
  // The model's input shape per sample: {C, H, W} for images, {T} for text.
  Shape sample_shape() const {
    return kind_ == DatasetKind::kTokens ? Shape{block_size_} : Shape{channels_, height_, width_};
  }
  // Images only (0 for text).
  int channels() const { return channels_; }
  int height() const { return height_; }
  int width() const { return width_; }
  std::int64_t sample_numel() const {
    return static_cast<std::int64_t>(channels_) * height_ * width_;
  }
  const DatasetMeta& meta() const { return meta_; }
  const std::uint8_t* image(std::int64_t i) const { return images_.data() + i * sample_numel(); }
  std::int32_t label(std::int64_t i) const { return labels_[static_cast<std::size_t>(i)]; }
  // Text only: the window length T, the tokens as loaded (after `limit`), their vocabulary.
  std::int64_t block_size() const { return block_size_; }
  std::int64_t num_tokens() const { return static_cast<std::int64_t>(tokens_.size()); }
  const std::vector<std::uint16_t>& tokens() const { return tokens_; }
  const Vocabulary& vocabulary() const { return vocabulary_; }
  Tokenizer tokenizer() const { return vocabulary_.tokenizer(); }
  // Images: "<file>:/<split> N=<n> CxHxW=<c>x<h>x<w> classes=<k>"; text: "<file>:/<split>
  // tokens=<n> T=<t> windows=<w> vocab=<v> tokenizer=<char|byte>". What ranks compare to agree on
  // the data.
  std::string identity() const;
  // XXH64 (runtime/xxh64.h) of what this split feeds the model, as loaded (after `limit`). Images:
  // shape, num_classes, mean and std (their float32 bits), labels, pixels. Text: token count,
  // block size, tokenizer, the vocabulary's entries and the tokens. Two files that differ in one
  // label, pixel, token, vocabulary entry or the normalisation give different checksums. Not
  // cached: a pass over the data at several GB/s (Fashion-MNIST's train split: a few ms).
  std::uint64_t content_checksum() const;

 private:
  // The text kind's part of load() (token_dataset.cpp).
  static DatasetSplit load_tokens(const std::string& path, const std::string& split,
                                  std::int64_t limit, std::int64_t block_size);

  std::string path_;
  std::string split_;
  DatasetKind kind_ = DatasetKind::kImages;
  int channels_ = 0, height_ = 0, width_ = 0;
  DatasetMeta meta_;
  std::vector<std::uint8_t> images_;
  std::vector<std::int32_t> labels_;
  std::int64_t block_size_ = 0;
  std::vector<std::uint16_t> tokens_;
  Vocabulary vocabulary_;
};

// What the file at `path` holds (its root attribute `kind`), without reading any split: lets a
// caller refuse a model meant for the other kind by name before loading.
DatasetKind dataset_kind(const std::string& path);

// Writes a dataset file with both splits (used by dpt-data import and by tests).
struct SplitData {
  std::vector<std::uint8_t> images;  // N*C*H*W
  std::vector<std::int32_t> labels;  // N
};
void write_dataset(const std::string& path, int channels, int height, int width,
                   const DatasetMeta& meta, const SplitData& train, const SplitData& test);

// Writes a text dataset file (used by dpt-data import-text and by tests). Every token must be
// below vocabulary.size().
void write_token_dataset(const std::string& path, const Vocabulary& vocabulary,
                         const std::vector<std::uint16_t>& train,
                         const std::vector<std::uint16_t>& test);

}  // namespace dpt::io
