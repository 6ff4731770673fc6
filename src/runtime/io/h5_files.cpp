// SPDX-License-Identifier: MIT
// Files, groups and paths: opening and creating files, the names used in messages, existence and
// kind of objects, listing children.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/io/h5.h"

namespace dpt::io::h5 {

// ---- files
// ----------------------------------------------------------------------------------------

H5Handle open_file_read(const std::string& path) {
  init();
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(status))
    DPT_FAIL_KIND(ErrorKind::kIo, "cannot open ", path, ": no such file");
  if (std::filesystem::is_directory(status))
    DPT_FAIL_KIND(ErrorKind::kIo, "cannot open ", path, ": is a directory");
  if (std::FILE* f = std::fopen(path.c_str(), "rb")) {
    std::fclose(f);
  } else {
    DPT_FAIL_KIND(ErrorKind::kIo, "cannot open ", path, ": ", std::strerror(errno));
  }
  const htri_t is_hdf5 = H5Fis_hdf5(path.c_str());
  if (is_hdf5 == 0) {
    DPT_FAIL_KIND(ErrorKind::kIo, "cannot open ", path,
                  ": not an HDF5 file or truncated (no HDF5 signature found)");
  }
  DPT_H5_CHECK_MSG(is_hdf5, "cannot open ", path, ": not an HDF5 file or truncated");
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  DPT_H5_CHECK_MSG(file, "cannot open ", path, ": not an HDF5 file or truncated");
  return H5Handle(file);
}

H5Handle create_file(const std::string& path) {
  init();
  const H5Handle fapl(H5Pcreate(H5P_FILE_ACCESS));
  DPT_H5_CHECK(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V18, H5F_LIBVER_LATEST));
  const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get());
  DPT_H5_CHECK_MSG(file, "cannot create ", path);
  return H5Handle(file);
}

void flush(hid_t file) {
  init();
  DPT_H5_CHECK_MSG(H5Fflush(file, H5F_SCOPE_GLOBAL), "cannot flush ", file_name(file));
}

// ---- names for messages
// --------------------------------------------------------------------------

std::string file_name(hid_t loc) {
  init();
  const ssize_t size = H5Fget_name(loc, nullptr, 0);
  if (size < 0) return "<unknown file>";  // only used to build messages: never fail on it
  std::string name(static_cast<std::size_t>(size) + 1, '\0');
  if (H5Fget_name(loc, name.data(), name.size()) < 0) return "<unknown file>";
  name.resize(static_cast<std::size_t>(size));
  return name;
}

std::string object_path(hid_t loc) {
  init();
  const ssize_t size = H5Iget_name(loc, nullptr, 0);
  if (size <= 0) return "/";  // messages only; anonymous objects have no path
  std::string name(static_cast<std::size_t>(size) + 1, '\0');
  if (H5Iget_name(loc, name.data(), name.size()) < 0) return "/";
  name.resize(static_cast<std::size_t>(size));
  return name;
}

std::string describe(hid_t loc, const std::string& name) {
  std::string path = name;
  if (name.empty()) {
    path = object_path(loc);
  } else if (name.front() != '/') {
    const std::string base = object_path(loc);
    path = (base == "/" ? "" : base) + "/" + name;
  }
  return file_name(loc) + ":" + path;
}

// ---- objects and groups
// --------------------------------------------------------------------------

bool exists(hid_t loc, const std::string& path) {
  init();
  std::string prefix = (!path.empty() && path.front() == '/') ? "/" : "";
  std::stringstream parts(path);
  std::string part;
  while (std::getline(parts, part, '/')) {
    if (part.empty()) continue;
    if (!prefix.empty() && prefix.back() != '/') prefix += '/';
    prefix += part;
    // A negative answer means an intermediate is not a group (H5Lexists cannot descend): the path
    // does not exist as asked.
    if (H5Lexists(loc, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
  }
  return true;
}

namespace {
H5I_type_t object_type(hid_t loc, const std::string& path) {
  if (!exists(loc, path)) return H5I_BADID;
  const hid_t id = H5Oopen(loc, path.c_str(), H5P_DEFAULT);
  if (id < 0) return H5I_BADID;  // a dangling soft link: treated as absent
  const H5Handle object(id);
  return H5Iget_type(object.get());
}
}  // namespace

bool is_group(hid_t loc, const std::string& path) { return object_type(loc, path) == H5I_GROUP; }
bool is_dataset(hid_t loc, const std::string& path) {
  return object_type(loc, path) == H5I_DATASET;
}

H5Handle open_group(hid_t loc, const std::string& path) {
  init();
  const hid_t id = H5Gopen2(loc, path.c_str(), H5P_DEFAULT);
  DPT_H5_CHECK_MSG(id, "cannot open group ", describe(loc, path));
  return H5Handle(id);
}

H5Handle create_group(hid_t loc, const std::string& path) {
  init();
  const H5Handle lcpl(H5Pcreate(H5P_LINK_CREATE));
  DPT_H5_CHECK(H5Pset_create_intermediate_group(lcpl.get(), 1));
  const hid_t id = H5Gcreate2(loc, path.c_str(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT);
  DPT_H5_CHECK_MSG(id, "cannot create group ", describe(loc, path));
  return H5Handle(id);
}

H5Handle open_dataset(hid_t loc, const std::string& path) {
  init();
  const hid_t id = H5Dopen2(loc, path.c_str(), H5P_DEFAULT);
  DPT_H5_CHECK_MSG(id, "cannot open dataset ", describe(loc, path));
  return H5Handle(id);
}

std::vector<std::string> list_children(hid_t group) {
  init();
  H5G_info_t info{};
  DPT_H5_CHECK_MSG(H5Gget_info(group, &info), "cannot list ", describe(group, ""));
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t size =
        H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    DPT_H5_CHECK_MSG(size, "cannot list ", describe(group, ""));
    std::string name(static_cast<std::size_t>(size) + 1, '\0');
    DPT_H5_CHECK_MSG(H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(),
                                        name.size(), H5P_DEFAULT),
                     "cannot list ", describe(group, ""));
    name.resize(static_cast<std::size_t>(size));
    names.push_back(std::move(name));
  }
  return names;
}

}  // namespace dpt::io::h5
