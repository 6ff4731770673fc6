// SPDX-License-Identifier: MIT
// Plain POSIX file writes with the system's reason in every error: what the checkpoint protocol
// needs beyond HDF5 (whole-file writes, fsync of files and directories).
#pragma once

#include <string>
#include <string_view>

namespace dpt::io {

// Writes `bytes` to `path` (created or truncated, mode 0644), then fsyncs it when `sync`. On any
// failure (disk full, file too large) removes what was written and throws an IoError naming the
// path, the reason and how far it got.
void write_whole_file(const std::string& path, std::string_view bytes, bool sync);

// Makes what was written to `path` (a file or a directory) durable; IoError on failure.
void fsync_path(const std::string& path, bool directory);

}  // namespace dpt::io
