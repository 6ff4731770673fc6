// SPDX-License-Identifier: MIT
// IDX parsing (http://yann.lecun.com/exdb/mnist/ "FILE FORMATS"): magic 0x00 0x00 <type> <rank>,
// then <rank> big-endian uint32 sizes, then the payload. zlib's gz* functions read gzip or plain.
#include "idx.h"

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <type_traits>

#include "runtime/check.h"

namespace dpt::data {
namespace {

struct GzClose {
  void operator()(gzFile f) const noexcept { gzclose(f); }  // read-only: nothing to lose on close
};
using UniqueGz = std::unique_ptr<std::remove_pointer_t<gzFile>, GzClose>;

// Reads exactly `size` bytes or reports how many were there.
std::size_t read_some(gzFile f, const std::string& path, void* out, std::size_t size) {
  std::size_t done = 0;
  auto* bytes = static_cast<unsigned char*>(out);
  while (done < size) {
    const unsigned want = static_cast<unsigned>(std::min<std::size_t>(size - done, 1u << 30));
    const int got = gzread(f, bytes + done, want);
    if (got < 0) {
      int code = 0;
      const char* message = gzerror(f, &code);
      DPT_FAIL_KIND(ErrorKind::kIo, path,
                    ": cannot decompress: ", message ? message : "zlib error");
    }
    if (got == 0) break;
    done += static_cast<std::size_t>(got);
  }
  return done;
}

std::uint32_t big_endian(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

}  // namespace

IdxArray read_idx_u8(const std::string& path, int expected_rank) {
  UniqueGz file(gzopen(path.c_str(), "rb"));
  DPT_CHECK_KIND(ErrorKind::kIo, file != nullptr, "cannot open ", path, ": no such file or not readable");

  unsigned char header[4];
  const std::size_t got = read_some(file.get(), path, header, sizeof header);
  DPT_CHECK_KIND(ErrorKind::kIo, got == sizeof header, path, ": too short for an IDX header (",
                 got, " bytes)");
  const std::uint32_t magic = big_endian(header);
  const std::uint32_t expected_magic = 0x00000800u | static_cast<std::uint32_t>(expected_rank);
  char found[16], expected[16];
  std::snprintf(found, sizeof found, "0x%08x", magic);
  std::snprintf(expected, sizeof expected, "0x%08x", expected_magic);
  DPT_CHECK_KIND(ErrorKind::kIo, magic == expected_magic, path, ": bad magic number ", found,
                 ", expected ", expected, " (IDX unsigned bytes, ", expected_rank, " dimensions)");

  IdxArray array;
  std::size_t numel = 1;
  for (int d = 0; d < expected_rank; ++d) {
    unsigned char size[4];
    DPT_CHECK_KIND(ErrorKind::kIo, read_some(file.get(), path, size, 4) == 4, path,
                   ": truncated IDX header (dimension ", d, " missing)");
    const std::uint32_t dim = big_endian(size);
    DPT_CHECK_KIND(ErrorKind::kIo, dim > 0 && dim < (1u << 28), path, ": dimension ", d, " is ",
                   dim, ", expected in [1, 2^28)");
    array.dims.push_back(dim);
    numel *= dim;
    DPT_CHECK_KIND(ErrorKind::kIo, numel < (std::size_t{1} << 34), path,
                   ": payload of more than 16 GiB declared");
  }
  array.values.resize(numel);
  const std::size_t payload = read_some(file.get(), path, array.values.data(), numel);
  DPT_CHECK_KIND(ErrorKind::kIo, payload == numel, path, ": truncated: header declares ", numel,
                 " bytes of data, found ", payload);
  unsigned char extra = 0;
  DPT_CHECK_KIND(ErrorKind::kIo, read_some(file.get(), path, &extra, 1) == 0, path,
                 ": trailing data after the ", numel, " bytes the header declares");
  return array;
}

}  // namespace dpt::data
