// SPDX-License-Identifier: MIT
// NCCL error text for the check macros; UniqueNcclComm's finalize/destroy/abort.
#include "comm/nccl/nccl_check.h"

#include <chrono>
#include <thread>

#include "comm/work_clock.h"

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

void UniqueNcclComm::reset() noexcept {
  if (comm_ == nullptr) return;
  ncclResult_t state = ncclCommFinalize(comm_);
  const double start = detail::steady_seconds();
  while (state == ncclInProgress && detail::steady_seconds() - start < finalize_timeout_s_) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (ncclCommGetAsyncError(comm_, &state) != ncclSuccess) state = ncclInternalError;
  }
  if (state == ncclSuccess) {
    DPT_NCCL_CHECK_LOG(ncclCommDestroy(comm_));
    comm_ = nullptr;
    return;
  }
  if (state == ncclInProgress) {
    log(LogLevel::kWarning, "NcclCommunicator: ncclCommFinalize did not finish within ",
        finalize_timeout_s_, " s; aborting the communicator");
  } else {
    log(LogLevel::kWarning, "NcclCommunicator: ncclCommFinalize failed: ", error_string(state),
        "; aborting the communicator");
  }
  abort();
}

void UniqueNcclComm::abort() noexcept {
  if (comm_ == nullptr) return;
  DPT_NCCL_CHECK_LOG(ncclCommAbort(comm_));
  comm_ = nullptr;
}

}  // namespace dpt::comm::nccl
