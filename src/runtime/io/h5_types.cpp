// SPDX-License-Identifier: MIT
// Types and dataspaces: the names inspect and messages print, shapes to and from HDF5.
#include <string>
#include <vector>

#include "runtime/io/h5.h"
#include "runtime/io/h5_internal.h"

namespace dpt::io::h5 {

std::vector<hsize_t> to_hsize(const std::vector<std::int64_t>& shape) {
  std::vector<hsize_t> dims;
  for (std::int64_t d : shape) {
    DPT_CHECK(d >= 0, "negative dimension in shape ", dpt::to_string(shape));
    dims.push_back(static_cast<hsize_t>(d));
  }
  return dims;
}

std::vector<std::int64_t> space_shape(hid_t space) {
  const int ndims = H5Sget_simple_extent_ndims(space);
  DPT_H5_CHECK(ndims);
  std::vector<hsize_t> dims(static_cast<std::size_t>(ndims));
  if (ndims > 0) DPT_H5_CHECK(H5Sget_simple_extent_dims(space, dims.data(), nullptr));
  return std::vector<std::int64_t>(dims.begin(), dims.end());
}

std::string type_name(hid_t type) {
  init();
  const H5T_class_t cls = H5Tget_class(type);
  const std::size_t bits = H5Tget_size(type) * 8;
  switch (cls) {
    case H5T_INTEGER: {
      const H5T_sign_t sign = H5Tget_sign(type);
      return (sign == H5T_SGN_NONE ? "uint" : "int") + std::to_string(bits);
    }
    case H5T_FLOAT:
      return "float" + std::to_string(bits);
    case H5T_STRING: {
      const htri_t variable = H5Tis_variable_str(type);
      return variable > 0 ? "string" : "string[" + std::to_string(bits / 8) + "]";
    }
    case H5T_BITFIELD:
      return "bitfield" + std::to_string(bits);
    case H5T_OPAQUE:
      return "opaque";
    case H5T_COMPOUND:
      return "compound";
    case H5T_REFERENCE:
      return "reference";
    case H5T_ENUM:
      return "enum";
    case H5T_VLEN:
      return "vlen";
    case H5T_ARRAY:
      return "array";
    case H5T_TIME:
      return "time";
    default:
      return "unknown type";
  }
}

}  // namespace dpt::io::h5
