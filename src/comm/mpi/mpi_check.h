// SPDX-License-Identifier: MIT
// DPT_MPI_CHECK (throws a kComm dpt::Error with MPI_Error_string's text) and DPT_MPI_CHECK_LOG (for
// destructors: logs and goes on), plus UniqueComm, the owner of an MPI_Comm.
#pragma once

#include <mpi.h>

#include <string>

#include "runtime/check.h"
#include "runtime/unique_handle.h"

namespace dpt::comm::mpi {

// "MPI error <class>: <MPI_Error_string text>", plus the world rank while dpt::process_rank() is
// not yet set (throw_error appends it once it is).
std::string error_string(int code);
inline bool succeeded(int code) noexcept { return code == MPI_SUCCESS; }

}  // namespace dpt::comm::mpi

// Only meaningful on communicators with MPI_ERRORS_RETURN (docs/STYLE.md decision 2): with the
// default MPI_ERRORS_ARE_FATAL a failing call never returns.
#define DPT_MPI_CHECK(expr)                                                    \
  DPT_CHECK_STATUS(::dpt::ErrorKind::kComm, expr, ::dpt::comm::mpi::succeeded, \
                   ::dpt::comm::mpi::error_string)

#define DPT_MPI_CHECK_LOG(expr)                                                    \
  DPT_CHECK_STATUS_LOG(::dpt::ErrorKind::kComm, expr, ::dpt::comm::mpi::succeeded, \
                       ::dpt::comm::mpi::error_string)

namespace dpt::comm::mpi {

// A communicator created by MPI_Comm_dup/split, freed once, never throwing. One still alive after
// MPI_Finalize is leaked with a warning (freeing it then is erroneous).
struct CommTraits {
  using handle_type = MPI_Comm;
  static MPI_Comm null() noexcept { return MPI_COMM_NULL; }
  static void close(MPI_Comm comm) noexcept;
};
using UniqueComm = UniqueHandle<CommTraits>;

// A user reduction (MPI_Op_create), freed once unless MPI has already been finalised.
struct OpTraits {
  using handle_type = MPI_Op;
  static MPI_Op null() noexcept { return MPI_OP_NULL; }
  static void close(MPI_Op op) noexcept;
};
using UniqueOp = UniqueHandle<OpTraits>;

// A private duplicate of `comm` (its collectives and messages can never match another user's)
// whose errors are returned, not fatal, so that every DPT_MPI_CHECK sees them. Collective.
UniqueComm duplicate_returning_errors(MPI_Comm comm);

}  // namespace dpt::comm::mpi
