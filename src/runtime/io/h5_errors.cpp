// SPDX-License-Identifier: MIT
// HDF5's error stack in our messages: its own printing silenced per thread, the innermost messages
// of the stack folded into every IoError (DPT_H5_CHECK, DPT_H5_CHECK_MSG).
#include <algorithm>
#include <string>
#include <vector>

#include "runtime/io/h5.h"

namespace dpt::io {

namespace detail {
void throw_h5_error(const char* expr, const std::string& context, const std::string& h5_detail,
                    const char* file, int line) {
  ::dpt::detail::throw_error(ErrorKind::kIo, expr,
                             h5_detail.empty() ? context : context + ": " + h5_detail, file, line);
}
}  // namespace detail

namespace h5 {
namespace {

herr_t collect_error(unsigned n, const H5E_error2_t* err, void* client) {
  auto* parts = static_cast<std::vector<std::string>*>(client);
  // Walking upward starts at the most specific error; two levels say what and where.
  if (n < 3 && err != nullptr && err->desc != nullptr && err->desc[0] != '\0') {
    const std::string desc = err->desc;
    if (std::find(parts->begin(), parts->end(), desc) == parts->end()) parts->push_back(desc);
  }
  return 0;
}

}  // namespace

void init() {
  // Per thread: the thread-safe HDF5 build keeps the automatic error printing per thread.
  thread_local bool silenced = false;
  if (!silenced) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // no status worth checking: printing is cosmetic
    silenced = true;
  }
}

std::string error_detail() {
  std::vector<std::string> parts;
  if (H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, collect_error, &parts) < 0) return "";
  std::string out;
  for (const std::string& p : parts) out += (out.empty() ? "" : "; ") + p;
  return out;
}

std::string describe_failure(long long /*status*/) {
  const std::string detail = error_detail();
  return detail.empty() ? "HDF5 call failed" : "HDF5 call failed: " + detail;
}

}  // namespace h5
}  // namespace dpt::io
