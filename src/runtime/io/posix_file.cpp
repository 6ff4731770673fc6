// SPDX-License-Identifier: MIT
// Whole-file writes and fsync with errno reported.
#include "runtime/io/posix_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "runtime/check.h"

namespace dpt::io {

void write_whole_file(const std::string& path, std::string_view bytes, bool sync) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  DPT_CHECK_KIND(ErrorKind::kIo, fd >= 0, "cannot create ", path, ": ", std::strerror(errno));
  std::size_t done = 0;
  std::string reason;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      reason = n < 0 ? std::strerror(errno) : "no progress";
      break;
    }
    done += static_cast<std::size_t>(n);
  }
  if (reason.empty() && sync && ::fsync(fd) != 0)
    reason = std::string("fsync: ") + std::strerror(errno);
  if (::close(fd) != 0 && reason.empty()) reason = std::string("close: ") + std::strerror(errno);
  if (!reason.empty()) std::remove(path.c_str());
  DPT_CHECK_KIND(ErrorKind::kIo, reason.empty(), "cannot write ", path, ": ", reason, " after ",
                 done, " of ", bytes.size(), " bytes");
}

void fsync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0));
  DPT_CHECK_KIND(ErrorKind::kIo, fd >= 0, "cannot open ", path,
                 " to fsync it: ", std::strerror(errno));
  const int rc = ::fsync(fd);
  const std::string reason = rc != 0 ? std::strerror(errno) : "";
  ::close(fd);
  DPT_CHECK_KIND(ErrorKind::kIo, rc == 0, "cannot fsync ", path, ": ", reason);
}

}  // namespace dpt::io
