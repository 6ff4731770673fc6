// SPDX-License-Identifier: MIT
// Loading and writing dptrain dataset files (docs/formats.md). Everything is validated before
// training starts, with messages that name the file, the object, what was expected and found.
#include "runtime/io/dataset.h"

#include <cmath>
#include <cstring>
#include <sstream>

#include "runtime/check.h"
#include "runtime/io/dataset_internal.h"
#include "runtime/io/h5.h"
#include "runtime/memory.h"
#include "runtime/xxh64.h"

namespace dpt::io {

namespace detail {

DatasetKind read_dataset_kind(hid_t file, const std::string& path) {
  // format / format_version are optional (files built by hand with h5py may lack them), but when
  // present they must say this is a dataset of a version we understand.
  if (h5::has_attribute(file, "format")) {
    const std::string format = h5::read_attribute_string(file, "format");
    DPT_IO_CHECK(format == kDatasetFormat, path, ": attribute 'format' of /: expected \"",
                 kDatasetFormat, "\", found \"", format, "\"");
  }
  if (h5::has_attribute(file, "format_version")) {
    const std::int64_t version = h5::read_attribute_int(file, "format_version");
    DPT_IO_CHECK(version == kDatasetFormatVersion, path,
                 ": attribute 'format_version' of /: expected ", kDatasetFormatVersion, ", found ",
                 version);
  }
  // Files written before text datasets existed have no `kind`: they are image datasets.
  if (!h5::has_attribute(file, "kind")) return DatasetKind::kImages;
  const std::string kind = h5::read_attribute_string(file, "kind");
  if (kind == "images") return DatasetKind::kImages;
  if (kind == "text") return DatasetKind::kTokens;
  DPT_FAIL_KIND(ErrorKind::kIo, path, ": attribute 'kind' of /: expected \"images\" or \"text\", found \"",
                kind, "\"");
}

void write_dataset_header(hid_t file, DatasetKind kind) {
  h5::write_attribute_string(file, "format", kDatasetFormat);
  h5::write_attribute_int(file, "format_version", kDatasetFormatVersion);
  h5::write_attribute_string(file, "kind", kind == DatasetKind::kTokens ? "text" : "images");
}

void check_dataset(hid_t file, const std::string& path, const std::string& name,
                   const char* expected) {
  DPT_IO_CHECK(h5::exists(file, name), path, ": dataset ", name, " is missing: expected ",
               expected);
  DPT_IO_CHECK(h5::is_dataset(file, name), path, ": ", name, " is not a dataset: expected ",
               expected);
}

void read_samples(hid_t dataset, const std::string& path, const std::string& name,
                  const h5::DatasetInfo& info, std::int64_t rows, hid_t mem_type, void* out,
                  std::size_t sample_bytes) {
  const std::int64_t block = info.chunk.empty() ? rows : std::max<std::int64_t>(1, info.chunk[0]);
  for (std::int64_t first = 0; first < rows; first += block) {
    const std::int64_t count = std::min(block, rows - first);
    try {
      h5::read_row_range_raw(dataset, first, count, mem_type,
                             static_cast<char*>(out) + first * static_cast<std::int64_t>(sample_bytes));
    } catch (const Error& e) {
      DPT_FAIL_KIND(ErrorKind::kIo, path, ": dataset ", name, ": cannot read samples [", first,
                    ", ", first + count, "): ", e.message());
    }
  }
}

}  // namespace detail

namespace {

using detail::check_dataset;
using detail::read_samples;

// ~1024 samples per chunk: a Fashion-MNIST chunk is 784 KiB, under HDF5's default 1 MiB chunk
// cache, and a corrupt chunk costs at most 1024 samples of diagnosis.
constexpr std::int64_t kImageChunkRows = 1024;
constexpr std::int64_t kLabelChunkRows = 65536;

std::string shape_text(const std::vector<std::int64_t>& shape) {
  return "rank " + std::to_string(shape.size()) + " " + dpt::to_string(shape);
}

DatasetMeta read_meta(hid_t file, const std::string& path) {
  DatasetMeta meta;
  DPT_IO_CHECK(h5::has_attribute(file, "num_classes"), path,
               ": attribute 'num_classes' of / is missing: expected an integer >= 2");
  const std::int64_t num_classes = h5::read_attribute_int(file, "num_classes");
  DPT_IO_CHECK(num_classes >= 2 && num_classes <= (std::int64_t{1} << 30), path,
               ": attribute 'num_classes' of /: expected an integer >= 2, found ", num_classes);
  meta.num_classes = static_cast<int>(num_classes);

  for (const char* name : {"mean", "std"}) {
    DPT_IO_CHECK(h5::has_attribute(file, name), path, ": attribute '", name,
                 "' of / is missing: expected a float (pixel scale 0..1)");
  }
  const double mean = h5::read_attribute_float(file, "mean");
  const double std_dev = h5::read_attribute_float(file, "std");
  DPT_IO_CHECK(std::isfinite(mean), path, ": attribute 'mean' of /: expected a finite float, found ",
               mean);
  DPT_IO_CHECK(std::isfinite(std_dev) && std_dev > 0, path,
               ": attribute 'std' of /: expected a finite float > 0, found ", std_dev);
  meta.mean = static_cast<float>(mean);
  meta.std = static_cast<float>(std_dev);

  if (h5::has_attribute(file, "class_names")) {
    meta.class_names = h5::read_attribute_strings(file, "class_names");
    DPT_IO_CHECK(static_cast<std::int64_t>(meta.class_names.size()) == num_classes, path,
                 ": attribute 'class_names' of /: expected ", num_classes,
                 " names (num_classes), found ", meta.class_names.size());
  }
  return meta;
}

}  // namespace

DatasetKind dataset_kind(const std::string& path) {
  const H5Handle file = h5::open_file_read(path);
  return detail::read_dataset_kind(file.get(), path);
}

DatasetSplit DatasetSplit::load(const std::string& path, const std::string& split,
                                std::int64_t limit, std::int64_t block_size) {
  DPT_CHECK(!split.empty() && split.find('/') == std::string::npos, "dataset split name '", split,
            "' must be a plain group name such as train or test");
  DPT_CHECK(limit >= 0, "dataset limit must be >= 0, got ", limit);
  const H5Handle file = h5::open_file_read(path);
  if (detail::read_dataset_kind(file.get(), path) == DatasetKind::kTokens) {
    return load_tokens(path, split, limit, block_size);
  }

  DatasetSplit out;
  out.path_ = path;
  out.split_ = split;
  out.meta_ = read_meta(file.get(), path);

  const std::string group = "/" + split;
  DPT_IO_CHECK(h5::is_group(file.get(), group), path, ": group ", group,
               " is missing: expected ", group, "/images and ", group, "/labels");
  const std::string images_name = group + "/images";
  const std::string labels_name = group + "/labels";
  check_dataset(file.get(), path, images_name, "uint8 [N, C, H, W]");
  check_dataset(file.get(), path, labels_name, "int32 [N]");

  const H5Handle images = h5::open_dataset(file.get(), images_name);
  const H5Handle labels = h5::open_dataset(file.get(), labels_name);
  const h5::DatasetInfo image_info = h5::dataset_info(images.get());
  const h5::DatasetInfo label_info = h5::dataset_info(labels.get());
  DPT_IO_CHECK(image_info.shape.size() == 4, path, ": dataset ", images_name,
               ": expected rank 4 [N, C, H, W], found ", shape_text(image_info.shape));
  DPT_IO_CHECK(image_info.dtype == "uint8", path, ": dataset ", images_name,
               ": expected dtype uint8, found ", image_info.dtype);
  DPT_IO_CHECK(label_info.shape.size() == 1, path, ": dataset ", labels_name,
               ": expected rank 1 [N], found ", shape_text(label_info.shape));
  DPT_IO_CHECK(label_info.dtype == "int32", path, ": dataset ", labels_name,
               ": expected dtype int32, found ", label_info.dtype);
  const std::int64_t n = image_info.shape[0];
  DPT_IO_CHECK(label_info.shape[0] == n, path, ": dataset ", labels_name, ": expected ", n,
               " labels (one per image in ", images_name, "), found ", label_info.shape[0]);
  DPT_IO_CHECK(n > 0, path, ": dataset ", images_name, ": expected at least one sample, found 0");
  for (int d = 1; d < 4; ++d) {
    DPT_IO_CHECK(image_info.shape[d] > 0 && image_info.shape[d] <= (1 << 20), path, ": dataset ",
                 images_name, ": expected C, H, W in [1, 2^20], found ",
                 dpt::to_string(image_info.shape));
  }
  out.channels_ = static_cast<int>(image_info.shape[1]);
  out.height_ = static_cast<int>(image_info.shape[2]);
  out.width_ = static_cast<int>(image_info.shape[3]);

  const std::int64_t rows = limit > 0 ? std::min(limit, n) : n;
  // The sizes the file declares, checked before anything is allocated (Note [Sizes from files]
  // in h5.h): the file holds them, N*C*H*W*4 (the samples as float) does not overflow, and the
  // samples kept fit in memory.
  std::int64_t float_bytes = 0;
  DPT_IO_CHECK(!__builtin_mul_overflow(n, out.sample_numel() * 4, &float_bytes), path,
               ": dataset ", images_name, ": shape ", dpt::to_string(image_info.shape),
               " overflows 64 bits as float32 bytes (a corrupt size field)");
  h5::checked_read_numel(labels.get(), label_info, rows, sizeof(std::int32_t));
  h5::checked_read_numel(images.get(), image_info, rows, 1);
  check_fits_in_memory(
      static_cast<std::uint64_t>(rows) * (out.sample_numel() + sizeof(std::int32_t)),
      dpt::detail::str("file ", path, ", datasets ", images_name, " and ", labels_name, " (",
                       rows, " samples of ", out.channels_, "x", out.height_, "x", out.width_,
                       " uint8 and an int32 label)"));
  out.labels_.resize(static_cast<std::size_t>(rows));
  read_samples(labels.get(), path, labels_name, label_info, rows, H5T_NATIVE_INT32,
               out.labels_.data(), sizeof(std::int32_t));
  for (std::int64_t i = 0; i < rows; ++i) {
    const std::int32_t label = out.labels_[static_cast<std::size_t>(i)];
    DPT_IO_CHECK(label >= 0 && label < out.meta_.num_classes, path, ": dataset ", labels_name,
                 ": label at index ", i, " is ", label, ", expected in [0, ",
                 out.meta_.num_classes, ") (num_classes)");
  }
  out.images_.resize(static_cast<std::size_t>(rows * out.sample_numel()));
  read_samples(images.get(), path, images_name, image_info, rows, H5T_NATIVE_UINT8,
               out.images_.data(), static_cast<std::size_t>(out.sample_numel()));
  return out;
}

std::string DatasetSplit::identity() const {
  std::ostringstream s;
  if (kind_ == DatasetKind::kTokens) {
    s << path_ << ":/" << split_ << " tokens=" << num_tokens() << " T=" << block_size_
      << " windows=" << size() << " vocab=" << vocabulary_.size()
      << " tokenizer=" << tokenizer_name(vocabulary_.tokenizer());
    return s.str();
  }
  s << path_ << ":/" << split_ << " N=" << size() << " CxHxW=" << channels_ << 'x' << height_
    << 'x' << width_ << " classes=" << meta_.num_classes;
  return s.str();
}

std::uint64_t DatasetSplit::content_checksum() const {
  if (kind_ == DatasetKind::kTokens) {
    // Entries length-prefixed, so that {"ab", "c"} and {"a", "bc"} differ.
    const std::int64_t header[] = {-1, num_tokens(), block_size_, vocabulary_.size(),
                                   static_cast<std::int64_t>(vocabulary_.tokenizer())};
    std::uint64_t h = xxh64(header, sizeof header);
    for (const std::string& text : vocabulary_.texts()) {
      const auto length = static_cast<std::uint64_t>(text.size());
      h = xxh64(&length, sizeof length, h);
      h = xxh64(text.data(), text.size(), h);
    }
    return xxh64(tokens_.data(), tokens_.size() * sizeof(std::uint16_t), h);
  }
  // Fixed-width fields in a fixed order; labels in host byte order (every rank of a job shares it).
  const std::int64_t header[] = {size(), channels_, height_, width_, meta_.num_classes};
  std::uint32_t normalisation[2];
  std::memcpy(&normalisation[0], &meta_.mean, sizeof(float));
  std::memcpy(&normalisation[1], &meta_.std, sizeof(float));
  std::uint64_t h = xxh64(header, sizeof header);
  h = xxh64(normalisation, sizeof normalisation, h);
  h = xxh64(labels_.data(), labels_.size() * sizeof(std::int32_t), h);
  return xxh64(images_.data(), images_.size(), h);
}

void write_dataset(const std::string& path, int channels, int height, int width,
                   const DatasetMeta& meta, const SplitData& train, const SplitData& test) {
  DPT_CHECK(channels > 0 && height > 0 && width > 0, "write_dataset: bad image shape ", channels,
            "x", height, "x", width);
  DPT_CHECK(meta.num_classes >= 2, "write_dataset: num_classes must be >= 2, got ",
            meta.num_classes);
  DPT_CHECK(meta.class_names.empty() ||
                static_cast<int>(meta.class_names.size()) == meta.num_classes,
            "write_dataset: ", meta.class_names.size(), " class names for ", meta.num_classes,
            " classes");
  DPT_CHECK(std::isfinite(meta.mean) && std::isfinite(meta.std) && meta.std > 0,
            "write_dataset: mean ", meta.mean, " / std ", meta.std, " must be finite, std > 0");
  const std::int64_t sample_numel = static_cast<std::int64_t>(channels) * height * width;
  for (const auto& [name, data] : {std::pair<const char*, const SplitData*>{"train", &train},
                                   std::pair<const char*, const SplitData*>{"test", &test}}) {
    const auto n = static_cast<std::int64_t>(data->labels.size());
    DPT_CHECK(static_cast<std::int64_t>(data->images.size()) == n * sample_numel,
              "write_dataset: ", name, " has ", data->images.size(), " pixels for ", n,
              " labels of ", sample_numel, " pixels each");
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int32_t label = data->labels[static_cast<std::size_t>(i)];
      DPT_CHECK(label >= 0 && label < meta.num_classes, "write_dataset: ", name, " label ", i,
                " is ", label, ", expected in [0, ", meta.num_classes, ")");
    }
  }

  std::size_t payload = 0;
  for (const SplitData* data : {&train, &test}) {
    payload += data->images.size() + data->labels.size() * sizeof(std::int32_t);
  }
  // Built in memory and written as <path>.tmp, then renamed: a full disk is one clear error and
  // a crash never leaves a valid-looking partial file.
  h5::write_file_then_rename(path, payload, [&](hid_t file) {
    detail::write_dataset_header(file, DatasetKind::kImages);
    h5::write_attribute_int(file, "num_classes", meta.num_classes);
    if (!meta.class_names.empty()) {
      h5::write_attribute_strings(file, "class_names", meta.class_names);
    }
    h5::write_attribute_f32(file, "mean", meta.mean);
    h5::write_attribute_f32(file, "std", meta.std);
    for (const auto& [name, data] : {std::pair<const char*, const SplitData*>{"train", &train},
                                     std::pair<const char*, const SplitData*>{"test", &test}}) {
      const auto n = static_cast<std::int64_t>(data->labels.size());
      const H5Handle group = h5::create_group(file, name);
      h5::write_dataset<std::uint8_t>(group.get(), "images", {n, channels, height, width},
                                      data->images.data(),
                                      {.fletcher32 = true, .chunk_rows = kImageChunkRows});
      h5::write_dataset<std::int32_t>(group.get(), "labels", {n}, data->labels.data(),
                                      {.fletcher32 = true, .chunk_rows = kLabelChunkRows});
    }
  });
}

}  // namespace dpt::io
