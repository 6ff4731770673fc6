// SPDX-License-Identifier: MIT
// What the image and text halves of dataset loading share (dataset.cpp, token_dataset.cpp): the
// file-level attributes and the chunk-wise, error-naming reads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "runtime/io/dataset.h"
#include "runtime/io/h5.h"

#define DPT_IO_CHECK(cond, ...) DPT_CHECK_KIND(::dpt::ErrorKind::kIo, cond, __VA_ARGS__)

namespace dpt::io::detail {

inline constexpr const char* kDatasetFormat = "dptrain-dataset";
inline constexpr std::int64_t kDatasetFormatVersion = 1;

// Checks the optional `format` / `format_version` attributes and returns the file's kind from the
// optional `kind` attribute ("images" when absent); anything else is an IoError naming the file.
DatasetKind read_dataset_kind(hid_t file, const std::string& path);
// Writes `format`, `format_version` and `kind`.
void write_dataset_header(hid_t file, DatasetKind kind);

// `name` exists and is a dataset; otherwise an IoError "... expected <expected>".
void check_dataset(hid_t file, const std::string& path, const std::string& name,
                   const char* expected);

// Reads samples [0, rows) of `dataset` a chunk's rows at a time, so that a read failure (a
// corrupt chunk: Fletcher32 mismatch, a damaged chunk index) names the samples it hit.
void read_samples(hid_t dataset, const std::string& path, const std::string& name,
                  const h5::DatasetInfo& info, std::int64_t rows, hid_t mem_type, void* out,
                  std::size_t sample_bytes);

}  // namespace dpt::io::detail
