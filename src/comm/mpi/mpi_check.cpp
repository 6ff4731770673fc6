// SPDX-License-Identifier: MIT
// MPI error text for the check macros, and the backend entry points communicator.cpp calls.
#include "comm/mpi/mpi_check.h"

#include <cstdlib>

#include "comm/mpi/mpi_backend.h"
#include "runtime/error.h"
#include "runtime/logging.h"

namespace dpt::comm::mpi {

std::string error_string(int code) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  int error_class = code;
  // Both are defined to work even when MPI is not initialised; their own status is ignored
  // because there is nothing better to report than `code` itself.
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) length = 0;
  MPI_Error_class(code, &error_class);
  std::string out = detail::str("MPI error ", error_class, ": ",
                                length > 0 ? std::string(text, static_cast<std::size_t>(length))
                                           : std::string("(no description)"));
  if (process_rank() < 0 && is_running()) {
    int rank = -1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    out += detail::str(" (MPI_COMM_WORLD rank ", rank, ')');
  }
  return out;
}

void CommTraits::close(MPI_Comm comm) noexcept {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) {
    try {
      log(LogLevel::kWarning, "an MPI communicator outlived MPI_Finalize and was leaked");
    } catch (...) {  // called from destructors: nothing may get out
    }
  } else {
    DPT_MPI_CHECK_LOG(MPI_Comm_free(&comm));
  }
}

void OpTraits::close(MPI_Op op) noexcept {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) DPT_MPI_CHECK_LOG(MPI_Op_free(&op));
}

bool is_running() noexcept {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized != 0 && finalized == 0;
}

void abort_job(int code) noexcept {
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

UniqueComm duplicate_returning_errors(MPI_Comm comm) {
  MPI_Comm dup = MPI_COMM_NULL;
  DPT_MPI_CHECK(MPI_Comm_dup(comm, &dup));
  UniqueComm owned(dup);
  DPT_MPI_CHECK(MPI_Comm_set_errhandler(owned.get(), MPI_ERRORS_RETURN));
  return owned;
}

}  // namespace dpt::comm::mpi
