// SPDX-License-Identifier: MIT
// HDF5 plumbing shared by datasets, checkpoints and dpt-data inspect: a move-only hid_t owner, a
// checked-call macro, and typed read/write helpers whose errors name the file and the object.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "runtime/check.h"
#include "runtime/tensor.h"
#include "runtime/unique_handle.h"

namespace dpt::io {

namespace h5 {
// Turns off HDF5's own error-stack printing for the calling thread (the thread-safe HDF5 that
// Debian ships keeps that setting per thread), so our IoError messages are the only output. Every
// helper below calls it first; code that calls the HDF5 C API directly calls it too.
void init();
// The innermost messages of the current thread's HDF5 error stack ("" when empty), e.g.
// "filter returned failure during read; data error detected by Fletcher32 checksum".
std::string error_detail();
}  // namespace h5

namespace detail {
[[noreturn]] void throw_h5_error(const char* expr, const std::string& context,
                                 const std::string& h5_detail, const char* file, int line);
}  // namespace detail

namespace h5 {
// hid_t, herr_t and htri_t all say failure with a negative value.
template <typename Status>
bool succeeded(Status status) noexcept {
  return status >= 0;
}
// "HDF5 call failed: <error_detail()>" (just the first part when the stack is empty).
std::string describe_failure(long long status);
}  // namespace h5

// Checks an HDF5 return value (hid_t, herr_t, htri_t: negative means failure) and throws an
// IoError carrying HDF5's own explanation from its error stack.
#define DPT_H5_CHECK(expr)                                                \
  DPT_CHECK_STATUS(::dpt::ErrorKind::kIo, expr, ::dpt::io::h5::succeeded, \
                   ::dpt::io::h5::describe_failure)
// The same as a warning, for destructors.
#define DPT_H5_CHECK_LOG(expr)                                                \
  DPT_CHECK_STATUS_LOG(::dpt::ErrorKind::kIo, expr, ::dpt::io::h5::succeeded, \
                       ::dpt::io::h5::describe_failure)

// Same as DPT_H5_CHECK, with a message saying what was being done ("cannot read dataset
// f.h5:/train/images"). The stack is read before the message is built: building it may call
// HDF5, which clears the stack.
#define DPT_H5_CHECK_MSG(expr, ...)                                                             \
  do {                                                                                          \
    if ((expr) < 0) {                                                                           \
      const std::string dpt_h5_detail_ = ::dpt::io::h5::error_detail();                         \
      ::dpt::io::detail::throw_h5_error(#expr, ::dpt::detail::str(__VA_ARGS__), dpt_h5_detail_, \
                                        __FILE__, __LINE__);                                    \
    }                                                                                           \
  } while (false)

namespace h5 {
// Every HDF5 identifier (file, group, dataset, attribute, dataspace, type, property list) is
// closed through H5Idec_ref, which works for all of them.
struct IdTraits {
  using handle_type = hid_t;
  static hid_t null() noexcept { return H5I_INVALID_HID; }
  static void close(hid_t id) noexcept { DPT_H5_CHECK_LOG(H5Idec_ref(id)); }
};
}  // namespace h5

// Owns one HDF5 identifier; move-only. The constructors check the id, so a failed HDF5 call that
// returned one is an IoError where it happened.
class H5Handle {
 public:
  H5Handle() = default;
  explicit H5Handle(hid_t id) {
    DPT_H5_CHECK(id);
    id_.reset(id);
  }
  // With what was being done, for the error message ("f.h5:/train/images: dataspace").
  H5Handle(hid_t id, const std::string& what) {
    DPT_H5_CHECK_MSG(id, what);
    id_.reset(id);
  }

  hid_t get() const noexcept { return id_.get(); }
  bool valid() const noexcept { return static_cast<bool>(id_); }
  // Closes now; logs (never throws) if HDF5 refuses, as destructors must.
  void reset() noexcept { id_.reset(); }

 private:
  UniqueHandle<h5::IdTraits> id_;
};

namespace h5 {

// ---- files and groups ---------------------------------------------------------------------------

// Opens an existing file read-only. IoError "cannot open <file>: no such file",
// "...: not an HDF5 file", "...: not an HDF5 file or truncated (<hdf5 detail>)".
H5Handle open_file_read(const std::string& path);
// Creates (truncates) a file with library-version bounds [1.8, latest], so h5py and HDF5 1.8+
// tools can read it.
H5Handle create_file(const std::string& path);
// Writes a new file at `path`: `fill` builds it in memory (HDF5's core driver, no backing store,
// the format of create_file()), then plain POSIX writes put the image on disk (not fsynced). HDF5
// never touches the disk, so a full disk or a file-size limit is one IoError with the path and the
// system's reason, the partial file is removed, and no HDF5 file is left open (with HDF5's own
// driver a failed flush kept the file open for HDF5's exit-time clean-up, which then crashed).
// `expected_bytes` (the payload) sizes the first allocation, so large files are not copied as
// they grow.
void write_file(const std::string& path, std::size_t expected_bytes,
                const std::function<void(hid_t file)>& fill);
// The same under <path>.tmp, renamed to `path` when complete: a crash never leaves a
// valid-looking partial file.
void write_file_then_rename(const std::string& path, std::size_t expected_bytes,
                            const std::function<void(hid_t file)>& fill);
// Writes buffered data of a file opened with create_file() to the OS.
void flush(hid_t file);

// The file name of any identifier, and "<file>:<object path>" for messages.
std::string file_name(hid_t loc);
std::string object_path(hid_t loc);
std::string describe(hid_t loc, const std::string& name);

// True when every component of `path` (relative to loc, or absolute) exists as a link.
bool exists(hid_t loc, const std::string& path);
bool is_group(hid_t loc, const std::string& path);
bool is_dataset(hid_t loc, const std::string& path);
H5Handle open_group(hid_t loc, const std::string& path);
// Creates `path` and any missing intermediate groups.
H5Handle create_group(hid_t loc, const std::string& path);
H5Handle open_dataset(hid_t loc, const std::string& path);
// Names of the links directly in group `loc`, in name order.
std::vector<std::string> list_children(hid_t group);

// ---- types --------------------------------------------------------------------------------------

template <typename T>
hid_t native_type();
template <>
inline hid_t native_type<std::uint8_t>() {
  return H5T_NATIVE_UINT8;
}
template <>
inline hid_t native_type<std::uint16_t>() {
  return H5T_NATIVE_UINT16;
}
template <>
inline hid_t native_type<std::int32_t>() {
  return H5T_NATIVE_INT32;
}
template <>
inline hid_t native_type<std::int64_t>() {
  return H5T_NATIVE_INT64;
}
template <>
inline hid_t native_type<float>() {
  return H5T_NATIVE_FLOAT;
}
template <>
inline hid_t native_type<double>() {
  return H5T_NATIVE_DOUBLE;
}

// "uint8", "int32", "float32", "float64", "string", "compound", ... for messages and inspect.
std::string type_name(hid_t type);

// ---- datasets -----------------------------------------------------------------------------------

struct DatasetInfo {
  std::vector<std::int64_t> shape;
  std::string dtype;                 // type_name() of the stored type
  std::vector<std::int64_t> chunk;   // empty when not chunked
  std::vector<std::string> filters;  // "fletcher32", "deflate", "shuffle", ...
};
DatasetInfo dataset_info(hid_t dataset);

struct WriteOptions {
  bool fletcher32 = true;       // checksum every chunk; reads then verify it
  std::int64_t chunk_rows = 0;  // rows of the first dimension per chunk; 0: ~1 MiB chunks
  int deflate_level = 0;        // 0: no compression
};

// Writes `data` (numel_of(shape) elements, row-major) as dataset `name` under loc (intermediate
// groups created). Empty and rank-0 datasets are stored contiguous, without filters (HDF5 filters
// need chunks, and chunks need a non-zero extent).
void write_dataset_raw(hid_t loc, const std::string& name, const std::vector<std::int64_t>& shape,
                       hid_t mem_type, const void* data, const WriteOptions& options);
template <typename T>
void write_dataset(hid_t loc, const std::string& name, const std::vector<std::int64_t>& shape,
                   const T* data, const WriteOptions& options = {}) {
  write_dataset_raw(loc, name, shape, native_type<T>(), data, options);
}

// Reads the first `rows` entries of the first dimension (all of them when rows < 0) into `out`,
// which holds rows * (product of the other dimensions) elements, converting to mem_type. A read
// failure (e.g. a Fletcher32 checksum mismatch) is an IoError naming the file and dataset.
void read_rows_raw(hid_t dataset, std::int64_t rows, hid_t mem_type, void* out);
// Reads rows [first, first + count) of the first dimension into `out` (count * the product of the
// other dimensions elements).
void read_row_range_raw(hid_t dataset, std::int64_t first, std::int64_t count, hid_t mem_type,
                        void* out);

// Note [Sizes from files]
// Every size a file declares is checked before memory is allocated for it, so that a corrupt or
// crafted file is an IoError naming the file and the dataset, never std::bad_alloc, a sanitizer's
// "allocation too big" or a multi-terabyte read of fill values:
//  - the product of the dimensions (times the element size) must not overflow;
//  - the file must hold the data it declares: a chunked dataset needs every chunk of its extent
//    allocated in the file (HDF5 would return fill values for the missing ones), a contiguous one
//    its full size;
//  - the bytes must fit in what this process can allocate (runtime/memory.h: physical memory,
//    the cgroup limit, RLIMIT_AS), an out-of-memory error naming the same.
// Returns the elements of the first `rows` rows (all rows when rows < 0).
std::int64_t checked_read_numel(hid_t dataset, const DatasetInfo& info, std::int64_t rows,
                                std::size_t element_size);

template <typename T>
std::vector<T> read_rows(hid_t dataset, std::int64_t rows = -1) {
  const DatasetInfo info = dataset_info(dataset);
  const std::int64_t numel = checked_read_numel(dataset, info, rows, sizeof(T));
  std::vector<T> out(static_cast<std::size_t>(numel));
  read_rows_raw(dataset, rows, native_type<T>(), out.data());
  return out;
}
// Reads a whole dataset; when `expected_shape` is given, a different shape is an IoError saying
// "expected [..], found [..]".
void check_shape(hid_t dataset, const std::vector<std::int64_t>& expected);
template <typename T>
std::vector<T> read_dataset(hid_t loc, const std::string& name,
                            const std::vector<std::int64_t>* expected_shape = nullptr) {
  const H5Handle dataset = open_dataset(loc, name);
  if (expected_shape != nullptr) check_shape(dataset.get(), *expected_shape);
  return read_rows<T>(dataset.get());
}

// ---- attributes ---------------------------------------------------------------------------------

bool has_attribute(hid_t loc, const std::string& name);
std::vector<std::string> list_attributes(hid_t loc);

struct AttributeInfo {
  std::vector<std::int64_t> shape;  // empty for a scalar
  std::string dtype;                // type_name()
  H5T_class_t type_class = H5T_NO_CLASS;
  std::int64_t numel = 1;
};
AttributeInfo attribute_info(hid_t loc, const std::string& name);

// Writers replace an existing attribute of the same name.
// Named by stored type (no overloads: an int literal would be ambiguous between int64 and double).
void write_attribute_int(hid_t loc, const std::string& name, std::int64_t value);  // int64
void write_attribute_f64(hid_t loc, const std::string& name, double value);        // float64
void write_attribute_f32(hid_t loc, const std::string& name, float value);         // float32
void write_attribute_string(hid_t loc, const std::string& name, const std::string& value);
void write_attribute_strings(hid_t loc, const std::string& name,
                             const std::vector<std::string>& values);  // 1-D, variable-length

// Readers check the type class and that there is one element (scalar or shape [1]), and throw an
// IoError "<file>: attribute <obj>@<name>: expected <what>, found <dtype> <shape>" otherwise.
std::int64_t read_attribute_int(hid_t loc, const std::string& name);
double read_attribute_float(hid_t loc, const std::string& name);
std::string read_attribute_string(hid_t loc, const std::string& name);
// A 1-D (or scalar) string attribute, fixed- or variable-length.
std::vector<std::string> read_attribute_strings(hid_t loc, const std::string& name);

}  // namespace h5
}  // namespace dpt::io
