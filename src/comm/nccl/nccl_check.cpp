// SPDX-License-Identifier: MIT
// NCCL error text for the check macros; UniqueNcclComm's finalize/destroy/abort.
#include "comm/nccl/nccl_check.h"

#include <chrono>
#include <thread>

#include "comm/work_clock.h"
#include "runtime/logging.h"

namespace dpt::comm::nccl {
namespace {

const char* status_name(ncclResult_t status) {
  switch (status) {
    case ncclSuccess:
      return "ncclSuccess";
    case ncclUnhandledCudaError:
      return "ncclUnhandledCudaError";
    case ncclSystemError:
      return "ncclSystemError";
    case ncclInternalError:
      return "ncclInternalError";
    case ncclInvalidArgument:
      return "ncclInvalidArgument";
    case ncclInvalidUsage:
      return "ncclInvalidUsage";
    case ncclRemoteError:
      return "ncclRemoteError";
    case ncclInProgress:
      return "ncclInProgress";
    // Codes added by NCCL releases after the one this was written against (2.30 adds
    // ncclTimeout) and ncclNumResults: the number and ncclGetErrorString's text still say what
    // happened. A default keeps -Werror=switch builds working on newer NCCL.
    default:
      break;
  }
  return "ncclResult_t";
}

}  // namespace

std::string error_string(ncclResult_t status) {
  std::string out = ::dpt::detail::str(status_name(status), " (", static_cast<int>(status),
                                       "): ", ncclGetErrorString(status));
  // NULL or "" when NCCL recorded nothing.
  const char* last = ncclGetLastError(nullptr);
  if (last != nullptr && *last != '\0') out += ::dpt::detail::str(" (last NCCL error: ", last, ')');
  return out;
}

void CommTraits::close(ncclComm_t comm) const noexcept {
  ncclResult_t state = ncclCommFinalize(comm);
  const double start = detail::steady_seconds();
  while (state == ncclInProgress && detail::steady_seconds() - start < finalize_timeout_s) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (ncclCommGetAsyncError(comm, &state) != ncclSuccess) state = ncclInternalError;
  }
  if (state == ncclSuccess) {
    DPT_NCCL_CHECK_LOG(ncclCommDestroy(comm));
    return;
  }
  try {
    if (state == ncclInProgress) {
      log(LogLevel::kWarning, "NcclCommunicator: ncclCommFinalize did not finish within ",
          finalize_timeout_s, " s; aborting the communicator");
    } else {
      log(LogLevel::kWarning, "NcclCommunicator: ncclCommFinalize failed: ", error_string(state),
          "; aborting the communicator");
    }
  } catch (...) {  // the abort below must happen whatever logging does
  }
  DPT_NCCL_CHECK_LOG(ncclCommAbort(comm));
}

void UniqueNcclComm::abort() noexcept {
  if (!comm_) return;
  DPT_NCCL_CHECK_LOG(ncclCommAbort(comm_.release()));
}

}  // namespace dpt::comm::nccl
