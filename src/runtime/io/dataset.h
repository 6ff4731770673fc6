// SPDX-License-Identifier: MIT
// An image-classification split (/train or /test) of a dptrain HDF5 dataset, validated and held in
// memory as uint8 (Fashion-MNIST's train split is 47 MB). Layout (docs/formats.md):
//   /<split>/images uint8 [N,C,H,W], /<split>/labels int32 [N]
//   root attributes: num_classes (int), class_names (strings), mean, std (float, pixel scale 0..1)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dpt::io {

struct DatasetMeta {
  int num_classes = 0;
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
  static DatasetSplit load(const std::string& path, const std::string& split, std::int64_t limit = 0);

  const std::string& path() const { return path_; }
  const std::string& split() const { return split_; }
  std::int64_t size() const { return static_cast<std::int64_t>(labels_.size()); }
  int channels() const { return channels_; }
  int height() const { return height_; }
  int width() const { return width_; }
  std::int64_t sample_numel() const {
    return static_cast<std::int64_t>(channels_) * height_ * width_;
  }
  const DatasetMeta& meta() const { return meta_; }
  const std::uint8_t* image(std::int64_t i) const { return images_.data() + i * sample_numel(); }
  std::int32_t label(std::int64_t i) const { return labels_[static_cast<std::size_t>(i)]; }
  // "<file>:/<split> N=<n> CxHxW=<c>x<h>x<w> classes=<k>": what ranks compare to agree on the data.
  std::string identity() const;
  // XXH64 (runtime/xxh64.h) of what this split feeds the model: its shape, num_classes, mean and
  // std (their float32 bits), the labels and the images, as loaded (after `limit`). Two files
  // that differ in one label, one pixel or the normalisation give different checksums. Not cached:
  // a pass over the data at several GB/s (Fashion-MNIST's train split: a few ms).
  std::uint64_t content_checksum() const;

 private:
  std::string path_;
  std::string split_;
  int channels_ = 0, height_ = 0, width_ = 0;
  DatasetMeta meta_;
  std::vector<std::uint8_t> images_;
  std::vector<std::int32_t> labels_;
};

// Writes a dataset file with both splits (used by dpt-data import and by tests).
struct SplitData {
  std::vector<std::uint8_t> images;  // N*C*H*W
  std::vector<std::int32_t> labels;  // N
};
void write_dataset(const std::string& path, int channels, int height, int width,
                   const DatasetMeta& meta, const SplitData& train, const SplitData& test);

}  // namespace dpt::io
