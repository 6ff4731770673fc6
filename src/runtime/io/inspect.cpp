// SPDX-License-Identifier: MIT
// Generic HDF5 walk for `dpt-data inspect`: links by name, so the output is stable and diffable.
#include "runtime/io/inspect.h"

#include <sstream>

#include "runtime/io/h5.h"

namespace dpt::io {
namespace {

constexpr std::size_t kMaxValueChars = 100;  // longer strings (a checkpoint's config) abbreviated
constexpr std::int64_t kMaxValues = 16;      // longer arrays: shape and dtype only

std::string abbreviate(const std::string& text) {
  // Built with append: GCC 12 warns falsely (-Wrestrict) on `'"' + text + '"'`.
  const std::size_t newline = text.find('\n');
  std::string out = "\"";
  if (text.size() <= kMaxValueChars && newline == std::string::npos) {
    out.append(text).append("\"");
    return out;
  }
  out.append(text, 0, std::min(kMaxValueChars, newline));
  out.append("...\" (").append(std::to_string(text.size())).append(" chars)");
  return out;
}

std::string attribute_value(hid_t loc, const std::string& name) {
  const h5::AttributeInfo info = h5::attribute_info(loc, name);
  std::ostringstream out;
  std::string shape;  // appended, not `" " + ...`: GCC 12's false -Wrestrict positive
  if (!info.shape.empty()) shape.append(" ").append(dpt::to_string(info.shape));
  if (info.numel > kMaxValues ||
      (info.type_class != H5T_STRING && info.type_class != H5T_INTEGER &&
       info.type_class != H5T_FLOAT)) {
    out << info.dtype << shape;
    return out.str();
  }
  if (info.type_class == H5T_STRING && info.shape.size() <= 1) {
    const std::vector<std::string> values = h5::read_attribute_strings(loc, name);
    if (info.shape.empty() && values.size() == 1) return abbreviate(values[0]);
    out << '[';
    for (std::size_t i = 0; i < values.size(); ++i) out << (i ? ", " : "") << abbreviate(values[i]);
    out << ']';
    return out.str();
  }
  if (info.numel == 1 && info.type_class == H5T_INTEGER) {
    out << h5::read_attribute_int(loc, name) << " (" << info.dtype << shape << ')';
    return out.str();
  }
  if (info.numel == 1 && info.type_class == H5T_FLOAT) {
    out << h5::read_attribute_float(loc, name) << " (" << info.dtype << shape << ')';
    return out.str();
  }
  out << info.dtype << shape;
  return out.str();
}

void print_attributes(hid_t loc, const std::string& indent, std::ostringstream& out) {
  for (const std::string& name : h5::list_attributes(loc)) {
    out << indent << "@" << name << " = " << attribute_value(loc, name) << '\n';
  }
}

void walk(hid_t group, const std::string& path, int depth, std::ostringstream& out) {
  const std::string indent(static_cast<std::size_t>(depth) * 2, ' ');
  for (const std::string& name : h5::list_children(group)) {
    const std::string child = (path == "/" ? "/" : path + "/") + name;
    if (h5::is_group(group, name)) {
      out << indent << child << "/ (group)\n";
      const H5Handle sub = h5::open_group(group, name);
      print_attributes(sub.get(), indent + "    ", out);
      walk(sub.get(), child, depth + 1, out);
    } else if (h5::is_dataset(group, name)) {
      const H5Handle dataset = h5::open_dataset(group, name);
      const h5::DatasetInfo info = h5::dataset_info(dataset.get());
      out << indent << child << "  " << info.dtype << ' ' << dpt::to_string(info.shape);
      if (!info.chunk.empty()) out << "  chunks " << dpt::to_string(info.chunk);
      out << "  filters: ";
      if (info.filters.empty()) out << "none";
      for (std::size_t i = 0; i < info.filters.size(); ++i) out << (i ? ", " : "") << info.filters[i];
      out << '\n';
      print_attributes(dataset.get(), indent + "    ", out);
    } else {
      out << indent << child << " (other object or dangling link)\n";
    }
  }
}

}  // namespace

std::string inspect_file(const std::string& path) {
  const H5Handle file = h5::open_file_read(path);
  std::ostringstream out;
  out << path << '\n';
  const H5Handle root = h5::open_group(file.get(), "/");
  out << "/ (root)\n";
  print_attributes(root.get(), "    ", out);
  walk(root.get(), "/", 0, out);
  return out.str();
}

}  // namespace dpt::io
