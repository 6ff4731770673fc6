// SPDX-License-Identifier: MIT
// DPT_NCCL_CHECK (throws a kComm dpt::Error with NCCL's name and text for the status plus
// ncclGetLastError's message) and DPT_NCCL_CHECK_LOG (for destructors: logs and goes on), plus
// UniqueNcclComm, the owner of an ncclComm_t. Only comm/nccl/ includes <nccl.h>.
#pragma once

#include <nccl.h>

#include <string>

#include "runtime/check.h"
#include "runtime/unique_handle.h"

namespace dpt::comm::nccl {

// "ncclRemoteError: remote process exited or there was a network error (last NCCL error: ...)".
// ncclGetLastError's message is process-wide (its comm argument is unused by NCCL 2.x), so no
// communicator is needed; it may describe an earlier asynchronous failure.
std::string error_string(ncclResult_t status);
inline bool succeeded(ncclResult_t status) noexcept { return status == ncclSuccess; }

}  // namespace dpt::comm::nccl

// For blocking calls only: on a non-blocking communicator (ours, see nccl_communicator.h) calls
// that take the communicator may return ncclInProgress, which is not an error; those are checked
// by NcclCommunicator itself.
#define DPT_NCCL_CHECK(expr)                                                     \
  DPT_CHECK_STATUS(::dpt::ErrorKind::kComm, expr, ::dpt::comm::nccl::succeeded, \
                   ::dpt::comm::nccl::error_string)

#define DPT_NCCL_CHECK_LOG(expr)                                                    \
  DPT_CHECK_STATUS_LOG(::dpt::ErrorKind::kComm, expr, ::dpt::comm::nccl::succeeded, \
                       ::dpt::comm::nccl::error_string)

namespace dpt::comm::nccl {

// Ends a non-blocking communicator in order: ncclCommFinalize (flushes the issued operations),
// polled with ncclCommGetAsyncError until it leaves ncclInProgress or `finalize_timeout_s` passes,
// then ncclCommDestroy; should finalizing fail or time out (a peer is gone), ncclCommAbort
// instead. Never throws.
struct CommTraits {
  using handle_type = ncclComm_t;
  static ncclComm_t null() noexcept { return nullptr; }
  void close(ncclComm_t comm) const noexcept;
  double finalize_timeout_s = 600.0;
};

// Owns an ncclComm_t of a non-blocking communicator. reset() finalizes and destroys it as above;
// abort() is for communicators that failed or timed out: NCCL's own documentation says to abort
// after an error, since nothing can be assumed of the operations in flight. The CUDA device of
// the communicator must be current.
class UniqueNcclComm {
 public:
  UniqueNcclComm() = default;
  UniqueNcclComm(ncclComm_t comm, double finalize_timeout_s) noexcept
      : comm_(comm, CommTraits{finalize_timeout_s}) {}

  ncclComm_t get() const noexcept { return comm_.get(); }
  explicit operator bool() const noexcept { return static_cast<bool>(comm_); }

  // Finalize + destroy (abort when that fails); nothing once the communicator is gone.
  void reset() noexcept { comm_.reset(); }
  // ncclCommAbort: stops the operations still running on the device and frees the communicator.
  void abort() noexcept;

 private:
  UniqueHandle<CommTraits> comm_;
};

}  // namespace dpt::comm::nccl
