// SPDX-License-Identifier: MIT
// Attributes: typed scalar and string writers that replace what was there, and readers that check
// the stored type and count and say what they found instead.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "runtime/io/h5.h"
#include "runtime/io/h5_internal.h"

namespace dpt::io::h5 {
namespace {

// HDF5 converts strings only between types of the same character set: readers pass the file's.
H5Handle string_type(bool variable, std::size_t size, H5T_cset_t cset = H5T_CSET_UTF8) {
  H5Handle type(H5Tcopy(H5T_C_S1));
  if (variable) {
    DPT_H5_CHECK(H5Tset_size(type.get(), H5T_VARIABLE));
  } else {
    DPT_H5_CHECK(H5Tset_size(type.get(), std::max<std::size_t>(size, 1)));
  }
  DPT_H5_CHECK(H5Tset_cset(type.get(), cset));
  return type;
}

std::string attribute_where(hid_t loc, const std::string& name) {
  return file_name(loc) + ": attribute '" + name + "' of " + object_path(loc);
}

H5Handle open_attribute(hid_t loc, const std::string& name) {
  init();
  const htri_t present = H5Aexists(loc, name.c_str());
  DPT_H5_CHECK_MSG(present, "cannot look up ", attribute_where(loc, name));
  if (present == 0) DPT_FAIL_KIND(ErrorKind::kIo, attribute_where(loc, name), ": missing");
  const hid_t id = H5Aopen(loc, name.c_str(), H5P_DEFAULT);
  DPT_H5_CHECK_MSG(id, "cannot open ", attribute_where(loc, name));
  return H5Handle(id);
}

[[noreturn]] void wrong_attribute(hid_t loc, const std::string& name, const char* expected,
                                  const AttributeInfo& info) {
  DPT_FAIL_KIND(ErrorKind::kIo, attribute_where(loc, name), ": expected ", expected, ", found ",
                info.dtype, " ",
                info.shape.empty() ? std::string("scalar") : dpt::to_string(info.shape));
}

H5Handle replace_attribute(hid_t loc, const std::string& name, hid_t type, hid_t space) {
  init();
  const htri_t present = H5Aexists(loc, name.c_str());
  DPT_H5_CHECK_MSG(present, "cannot look up ", attribute_where(loc, name));
  if (present > 0)
    DPT_H5_CHECK_MSG(H5Adelete(loc, name.c_str()), "cannot replace ", attribute_where(loc, name));
  const hid_t id = H5Acreate2(loc, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT);
  DPT_H5_CHECK_MSG(id, "cannot create ", attribute_where(loc, name));
  return H5Handle(id);
}

template <typename T>
void write_scalar_attribute(hid_t loc, const std::string& name, hid_t type, T value) {
  const H5Handle space(H5Screate(H5S_SCALAR));
  const H5Handle attr = replace_attribute(loc, name, type, space.get());
  DPT_H5_CHECK_MSG(H5Awrite(attr.get(), type, &value), "cannot write ", attribute_where(loc, name));
}

}  // namespace

bool has_attribute(hid_t loc, const std::string& name) {
  init();
  const htri_t present = H5Aexists(loc, name.c_str());
  DPT_H5_CHECK_MSG(present, "cannot look up ", attribute_where(loc, name));
  return present > 0;
}

std::vector<std::string> list_attributes(hid_t loc) {
  init();
  H5O_info_t info{};
#if H5_VERSION_GE(1, 12, 0)
  DPT_H5_CHECK(H5Oget_info3(loc, &info, H5O_INFO_NUM_ATTRS));
#elif H5_VERSION_GE(1, 10, 3)
  DPT_H5_CHECK(H5Oget_info2(loc, &info, H5O_INFO_NUM_ATTRS));
#else
  DPT_H5_CHECK(H5Oget_info(loc, &info));
#endif
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.num_attrs; ++i) {
    const ssize_t size =
        H5Aget_name_by_idx(loc, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    DPT_H5_CHECK(size);
    std::string name(static_cast<std::size_t>(size) + 1, '\0');
    DPT_H5_CHECK(H5Aget_name_by_idx(loc, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(),
                                    name.size(), H5P_DEFAULT));
    name.resize(static_cast<std::size_t>(size));
    names.push_back(std::move(name));
  }
  return names;
}

AttributeInfo attribute_info(hid_t loc, const std::string& name) {
  const H5Handle attr = open_attribute(loc, name);
  AttributeInfo info;
  const H5Handle space(H5Aget_space(attr.get()),
                       describe(loc, name) + " (attribute): cannot get its dataspace");
  info.shape = space_shape(space.get());
  const hssize_t npoints = H5Sget_simple_extent_npoints(space.get());
  DPT_H5_CHECK(npoints);
  info.numel = npoints;
  const H5Handle type(H5Aget_type(attr.get()),
                      describe(loc, name) + " (attribute): cannot get its type");
  info.type_class = H5Tget_class(type.get());
  info.dtype = type_name(type.get());
  return info;
}

void write_attribute_int(hid_t loc, const std::string& name, std::int64_t value) {
  write_scalar_attribute(loc, name, H5T_NATIVE_INT64, value);
}

void write_attribute_f64(hid_t loc, const std::string& name, double value) {
  write_scalar_attribute(loc, name, H5T_NATIVE_DOUBLE, value);
}

void write_attribute_f32(hid_t loc, const std::string& name, float value) {
  write_scalar_attribute(loc, name, H5T_NATIVE_FLOAT, value);
}

// Strings are written fixed-length, so they live in the object header, which the HDF5 1.8+ format
// checksums; variable-length strings would go to the global heap, which has no checksum, and a
// flipped byte there would pass unnoticed.
void write_attribute_string(hid_t loc, const std::string& name, const std::string& value) {
  init();
  const H5Handle type = string_type(false, value.size() + 1);
  const H5Handle space(H5Screate(H5S_SCALAR));
  const H5Handle attr = replace_attribute(loc, name, type.get(), space.get());
  DPT_H5_CHECK_MSG(H5Awrite(attr.get(), type.get(), value.c_str()), "cannot write ",
                   attribute_where(loc, name));
}

void write_attribute_strings(hid_t loc, const std::string& name,
                             const std::vector<std::string>& values) {
  init();
  std::size_t width = 1;
  for (const std::string& v : values) width = std::max(width, v.size() + 1);
  const H5Handle type = string_type(false, width);
  const hsize_t n = values.size();
  const H5Handle space(H5Screate_simple(1, &n, nullptr));
  const H5Handle attr = replace_attribute(loc, name, type.get(), space.get());
  std::vector<char> packed(values.size() * width, '\0');
  for (std::size_t i = 0; i < values.size(); ++i) {
    std::copy(values[i].begin(), values[i].end(),
              packed.begin() + static_cast<std::ptrdiff_t>(i * width));
  }
  if (n > 0) {
    DPT_H5_CHECK_MSG(H5Awrite(attr.get(), type.get(), packed.data()), "cannot write ",
                     attribute_where(loc, name));
  }
}

std::int64_t read_attribute_int(hid_t loc, const std::string& name) {
  const AttributeInfo info = attribute_info(loc, name);
  if (info.type_class != H5T_INTEGER || info.numel != 1) {
    wrong_attribute(loc, name, "one integer", info);
  }
  const H5Handle attr = open_attribute(loc, name);
  std::int64_t value = 0;
  DPT_H5_CHECK_MSG(H5Aread(attr.get(), H5T_NATIVE_INT64, &value), "cannot read ",
                   attribute_where(loc, name));
  return value;
}

double read_attribute_float(hid_t loc, const std::string& name) {
  const AttributeInfo info = attribute_info(loc, name);
  if (info.type_class != H5T_FLOAT || info.numel != 1) {
    wrong_attribute(loc, name, "one float", info);
  }
  const H5Handle attr = open_attribute(loc, name);
  double value = 0;
  DPT_H5_CHECK_MSG(H5Aread(attr.get(), H5T_NATIVE_DOUBLE, &value), "cannot read ",
                   attribute_where(loc, name));
  return value;
}

std::vector<std::string> read_attribute_strings(hid_t loc, const std::string& name) {
  const AttributeInfo info = attribute_info(loc, name);
  if (info.type_class != H5T_STRING || info.shape.size() > 1) {
    wrong_attribute(loc, name, "strings (scalar or 1-D)", info);
  }
  const H5Handle attr = open_attribute(loc, name);
  const H5Handle file_type(H5Aget_type(attr.get()));
  const htri_t variable = H5Tis_variable_str(file_type.get());
  DPT_H5_CHECK(variable);
  const H5T_cset_t cset = H5Tget_cset(file_type.get());
  DPT_H5_CHECK(cset);
  const std::size_t n = static_cast<std::size_t>(info.numel);
  std::vector<std::string> out;
  if (n == 0) return out;
  if (variable > 0) {
    const H5Handle mem_type = string_type(true, 0, cset);
    std::vector<char*> pointers(n, nullptr);
    DPT_H5_CHECK_MSG(H5Aread(attr.get(), mem_type.get(), pointers.data()), "cannot read ",
                     attribute_where(loc, name));
    for (char* p : pointers) {
      out.emplace_back(p != nullptr ? p : "");
      if (p != nullptr) H5free_memory(p);  // strings HDF5 allocated for us
    }
  } else {
    const std::size_t size = H5Tget_size(file_type.get());
    const H5Handle mem_type = string_type(false, size, cset);
    // Read with the file's padding, so that only a space-padded (Fortran-style) string loses its
    // trailing spaces: in a NUL-terminated or NUL-padded one they are content (a vocabulary's
    // " " entry).
    const H5T_str_t pad = H5Tget_strpad(file_type.get());
    DPT_H5_CHECK(pad);
    DPT_H5_CHECK(H5Tset_strpad(mem_type.get(), pad));
    std::vector<char> buffer(n * size, '\0');
    DPT_H5_CHECK_MSG(H5Aread(attr.get(), mem_type.get(), buffer.data()), "cannot read ",
                     attribute_where(loc, name));
    for (std::size_t i = 0; i < n; ++i) {
      const char* begin = buffer.data() + i * size;
      out.emplace_back(begin, strnlen(begin, size));
      if (pad == H5T_STR_SPACEPAD) {
        while (!out.back().empty() && out.back().back() == ' ') out.back().pop_back();
      }
    }
  }
  return out;
}

std::string read_attribute_string(hid_t loc, const std::string& name) {
  const AttributeInfo info = attribute_info(loc, name);
  if (info.type_class != H5T_STRING || info.numel != 1) {
    wrong_attribute(loc, name, "one string", info);
  }
  return read_attribute_strings(loc, name).at(0);
}

}  // namespace dpt::io::h5
