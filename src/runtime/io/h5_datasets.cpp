// SPDX-License-Identifier: MIT
// Datasets: what a dataset is (shape, type, chunks, filters), writing one with the checksum filter,
// reading all or the first rows of one.
#include <algorithm>
#include <string>
#include <vector>

#include "runtime/io/h5.h"
#include "runtime/io/h5_internal.h"

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
