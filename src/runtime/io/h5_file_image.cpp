// SPDX-License-Identifier: MIT
// Files written whole: built in memory by HDF5's core driver, then put on disk with plain POSIX
// writes (see write_file() in h5.h for why).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/io/h5.h"
#include "runtime/io/h5_checksum.h"
#include "runtime/io/posix_file.h"

namespace dpt::io::h5 {
namespace {

// A file that lives in memory only; `name` appears in messages.
H5Handle create_memory_file(const std::string& name, std::size_t expected_bytes) {
  init();
  const H5Handle fapl(H5Pcreate(H5P_FILE_ACCESS));
  // Metadata and chunk headers add a little to the payload; nothing goes to disk (backing_store
  // = false).
  const std::size_t increment = std::max<std::size_t>(
      std::size_t{1} << 20, expected_bytes + (expected_bytes >> 6) + (std::size_t{1} << 20));
  DPT_H5_CHECK(H5Pset_fapl_core(fapl.get(), increment, /*backing_store=*/0));
  DPT_H5_CHECK(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V18, H5F_LIBVER_LATEST));
  const hid_t file = H5Fcreate(name.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get());
  DPT_H5_CHECK_MSG(file, "cannot create in-memory HDF5 file for ", name);
  return H5Handle(file);
}

// The bytes of a file as they would be on disk (flushes it first).
std::vector<char> file_image(hid_t file) {
  init();
  DPT_H5_CHECK_MSG(H5Fflush(file, H5F_SCOPE_GLOBAL), "cannot flush ", file_name(file));
  const ssize_t size = H5Fget_file_image(file, nullptr, 0);
  DPT_H5_CHECK_MSG(size, "cannot get the image of ", file_name(file));
  std::vector<char> image(static_cast<std::size_t>(size));
  DPT_H5_CHECK_MSG(H5Fget_file_image(file, image.data(), image.size()), "cannot get the image of ",
                   file_name(file));
  fix_superblock_checksum(image);
  return image;
}

}  // namespace

void write_file(const std::string& path, std::size_t expected_bytes,
                const std::function<void(hid_t file)>& fill) {
  std::vector<char> image;
  {
    const H5Handle file = create_memory_file(path, expected_bytes);
    fill(file.get());
    image = file_image(file.get());
  }
  write_whole_file(path, std::string_view(image.data(), image.size()), /*sync=*/false);
}

void write_file_then_rename(const std::string& path, std::size_t expected_bytes,
                            const std::function<void(hid_t file)>& fill) {
  // write_file leaves no partial .tmp behind, so there is nothing to clean up on failure.
  const std::string tmp = path + ".tmp";
  write_file(tmp, expected_bytes, fill);
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    DPT_FAIL_KIND(ErrorKind::kIo, "cannot rename ", tmp, " to ", path, ": ", ec.message());
  }
}

}  // namespace dpt::io::h5
