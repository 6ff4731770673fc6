// SPDX-License-Identifier: MIT
// Datasets: what a dataset is (shape, type, chunks, filters), writing one with the checksum filter,
// reading all or the first rows of one.
#include <algorithm>
#include <string>
#include <vector>

#include "runtime/io/h5.h"
#include "runtime/io/h5_internal.h"
#include "runtime/memory.h"

namespace dpt::io::h5 {

DatasetInfo dataset_info(hid_t dataset) {
  init();
  DatasetInfo info;
  const H5Handle space(H5Dget_space(dataset), describe(dataset, "") + ": cannot get its dataspace");
  info.shape = space_shape(space.get());
  const H5Handle type(H5Dget_type(dataset), describe(dataset, "") + ": cannot get its type");
  info.dtype = type_name(type.get());
  const H5Handle dcpl(H5Dget_create_plist(dataset),
                      describe(dataset, "") + ": cannot get its creation properties");
  const H5D_layout_t layout = H5Pget_layout(dcpl.get());
  DPT_H5_CHECK(layout);
  if (layout == H5D_CHUNKED) {
    const int ndims = H5Pget_chunk(dcpl.get(), 0, nullptr);
    DPT_H5_CHECK(ndims);
    std::vector<hsize_t> chunk(static_cast<std::size_t>(ndims));
    DPT_H5_CHECK(H5Pget_chunk(dcpl.get(), ndims, chunk.data()));
    info.chunk.assign(chunk.begin(), chunk.end());
  }
  const int nfilters = H5Pget_nfilters(dcpl.get());
  DPT_H5_CHECK(nfilters);
  for (int i = 0; i < nfilters; ++i) {
    unsigned flags = 0, config = 0;
    std::size_t nvalues = 0;
    char name[64] = {};
    const H5Z_filter_t id = H5Pget_filter2(dcpl.get(), static_cast<unsigned>(i), &flags, &nvalues,
                                           nullptr, sizeof name, name, &config);
    DPT_H5_CHECK(id);
    switch (id) {
      case H5Z_FILTER_FLETCHER32:
        info.filters.emplace_back("fletcher32");
        break;
      case H5Z_FILTER_DEFLATE:
        info.filters.emplace_back("deflate");
        break;
      case H5Z_FILTER_SHUFFLE:
        info.filters.emplace_back("shuffle");
        break;
      case H5Z_FILTER_SZIP:
        info.filters.emplace_back("szip");
        break;
      case H5Z_FILTER_NBIT:
        info.filters.emplace_back("nbit");
        break;
      case H5Z_FILTER_SCALEOFFSET:
        info.filters.emplace_back("scaleoffset");
        break;
      default:
        info.filters.push_back("filter " + std::to_string(id) + " (" + name + ")");
    }
  }
  return info;
}

void check_shape(hid_t dataset, const std::vector<std::int64_t>& expected) {
  const DatasetInfo info = dataset_info(dataset);
  if (info.shape != expected) {
    DPT_FAIL_KIND(ErrorKind::kIo, describe(dataset, ""), ": expected shape ",
                  dpt::to_string(expected), ", found ", dpt::to_string(info.shape));
  }
}

void write_dataset_raw(hid_t loc, const std::string& name, const std::vector<std::int64_t>& shape,
                       hid_t mem_type, const void* data, const WriteOptions& options) {
  init();
  const std::vector<hsize_t> dims = to_hsize(shape);
  hsize_t numel = 1;
  for (hsize_t d : dims) numel *= d;
  const H5Handle space(dims.empty()
                           ? H5Screate(H5S_SCALAR)
                           : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
  const H5Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
  const bool filtered = options.fletcher32 || options.deflate_level > 0 || options.chunk_rows > 0;
  if (!dims.empty() && numel > 0 && filtered) {
    const std::size_t elem_bytes = H5Tget_size(mem_type);
    DPT_CHECK(elem_bytes > 0, "write_dataset ", name, ": bad memory type");
    const hsize_t row_bytes = numel / dims[0] * elem_bytes;
    hsize_t rows = options.chunk_rows > 0 ? static_cast<hsize_t>(options.chunk_rows)
                                          : std::max<hsize_t>(1, (hsize_t{1} << 20) / row_bytes);
    rows = std::min(rows, dims[0]);
    std::vector<hsize_t> chunk = dims;
    chunk[0] = rows;
    DPT_H5_CHECK(H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()));
    if (options.deflate_level > 0) {
      DPT_H5_CHECK(H5Pset_deflate(dcpl.get(), static_cast<unsigned>(options.deflate_level)));
    }
    // Last in the pipeline, so the checksum covers the bytes as stored (h5py's order too).
    if (options.fletcher32) DPT_H5_CHECK(H5Pset_fletcher32(dcpl.get()));
  }
  const H5Handle lcpl(H5Pcreate(H5P_LINK_CREATE));
  DPT_H5_CHECK(H5Pset_create_intermediate_group(lcpl.get(), 1));
  const hid_t id =
      H5Dcreate2(loc, name.c_str(), mem_type, space.get(), lcpl.get(), dcpl.get(), H5P_DEFAULT);
  DPT_H5_CHECK_MSG(id, "cannot create dataset ", describe(loc, name));
  const H5Handle dataset(id);
  if (numel > 0) {
    DPT_CHECK(data != nullptr, "write_dataset ", name, ": null data for ", numel, " elements");
    DPT_H5_CHECK_MSG(H5Dwrite(dataset.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data),
                     "cannot write dataset ", describe(loc, name));
  }
}

std::int64_t checked_read_numel(hid_t dataset, const DatasetInfo& info, std::int64_t rows,
                                std::size_t element_size) {
  const std::string where = describe(dataset, "");
  std::int64_t numel = 1, stored = 1;
  bool overflow = false;
  for (std::size_t i = 0; i < info.shape.size(); ++i) {
    const std::int64_t extent = (i == 0 && rows >= 0) ? std::min(rows, info.shape[i]) : info.shape[i];
    overflow = overflow || __builtin_mul_overflow(numel, extent, &numel) ||
               __builtin_mul_overflow(stored, info.shape[i], &stored);
  }
  std::int64_t bytes = 0;
  overflow = overflow || __builtin_mul_overflow(stored, static_cast<std::int64_t>(element_size), &bytes);
  DPT_CHECK_KIND(ErrorKind::kIo, !overflow && bytes <= PTRDIFF_MAX, where, ": declares shape ",
                 dpt::to_string(info.shape), " of ", info.dtype,
                 " whose size in bytes overflows 64 bits (a corrupt size field)");
  if (stored == 0) return 0;

  // Does the file hold what the shape declares? (Note [Sizes from files])
  if (!info.chunk.empty()) {
    std::int64_t expected = 1;
    for (std::size_t i = 0; i < info.shape.size() && i < info.chunk.size(); ++i) {
      DPT_CHECK_KIND(ErrorKind::kIo, info.chunk[i] > 0, where, ": chunk shape ",
                     dpt::to_string(info.chunk), " has a zero extent");
      expected *= (info.shape[i] + info.chunk[i] - 1) / info.chunk[i];  // <= stored: no overflow
    }
    hsize_t allocated = 0;
    const H5Handle space(H5Dget_space(dataset), where + ": cannot get its dataspace");
    DPT_H5_CHECK_MSG(H5Dget_num_chunks(dataset, space.get(), &allocated),
                     "cannot count the chunks of ", where);
    DPT_CHECK_KIND(ErrorKind::kIo, static_cast<std::int64_t>(allocated) >= expected, where,
                   ": declares shape ", dpt::to_string(info.shape), " (", expected,
                   " chunks of ", dpt::to_string(info.chunk), ") but the file holds ", allocated,
                   " chunk(s): a size field larger than the data written");
  } else {
    const hsize_t storage = H5Dget_storage_size(dataset);
    DPT_CHECK_KIND(ErrorKind::kIo, static_cast<std::int64_t>(storage) >= bytes, where,
                   ": declares shape ", dpt::to_string(info.shape), " of ", info.dtype, " (",
                   bytes, " bytes) but the file holds ", storage,
                   " bytes of it: a size field larger than the data written");
  }
  const std::string part = rows >= 0 ? dpt::detail::str(", its first ", rows, " rows") : std::string();
  check_fits_in_memory(static_cast<std::uint64_t>(numel) * element_size,
                       dpt::detail::str("reading ", where, " (", dpt::to_string(info.shape), " ",
                                   info.dtype, part, ")"));
  return numel;
}

void read_row_range_raw(hid_t dataset, std::int64_t first, std::int64_t count, hid_t mem_type,
                        void* out) {
  init();
  const H5Handle file_space(H5Dget_space(dataset),
                            describe(dataset, "") + ": cannot get its dataspace");
  const std::vector<std::int64_t> shape = space_shape(file_space.get());
  DPT_CHECK(!shape.empty() && first >= 0 && count >= 0 && first + count <= shape[0],
            "read_row_range: rows [", first, ", ", first + count, ") of ", describe(dataset, ""),
            " of shape ", dpt::to_string(shape));
  if (count == 0) return;
  std::vector<hsize_t> extent = to_hsize(shape);
  extent[0] = static_cast<hsize_t>(count);
  std::vector<hsize_t> start(extent.size(), 0);
  start[0] = static_cast<hsize_t>(first);
  DPT_H5_CHECK(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr,
                                   extent.data(), nullptr));
  const H5Handle mem_space(H5Screate_simple(static_cast<int>(extent.size()), extent.data(), nullptr));
  DPT_H5_CHECK_MSG(H5Dread(dataset, mem_type, mem_space.get(), file_space.get(), H5P_DEFAULT, out),
                   "cannot read rows [", first, ", ", first + count, ") of ", describe(dataset, ""));
}

void read_rows_raw(hid_t dataset, std::int64_t rows, hid_t mem_type, void* out) {
  init();
  const H5Handle file_space(H5Dget_space(dataset),
                            describe(dataset, "") + ": cannot get its dataspace");
  const std::vector<std::int64_t> shape = space_shape(file_space.get());
  if (shape.empty() || rows < 0 || rows == shape[0]) {
    if (H5Sget_simple_extent_npoints(file_space.get()) == 0) return;
    DPT_H5_CHECK_MSG(H5Dread(dataset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out),
                     "cannot read dataset ", describe(dataset, ""));
    return;
  }
  DPT_CHECK(rows <= shape[0], "read_rows: ", rows, " rows requested from ", describe(dataset, ""),
            " which has ", shape[0]);
  if (rows == 0) return;
  std::vector<hsize_t> count = to_hsize(shape);
  count[0] = static_cast<hsize_t>(rows);
  const std::vector<hsize_t> start(count.size(), 0);
  DPT_H5_CHECK(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr,
                                   count.data(), nullptr));
  const H5Handle mem_space(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr));
  DPT_H5_CHECK_MSG(H5Dread(dataset, mem_type, mem_space.get(), file_space.get(), H5P_DEFAULT, out),
                   "cannot read dataset ", describe(dataset, ""));
}

}  // namespace dpt::io::h5
