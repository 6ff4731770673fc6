// SPDX-License-Identifier: MIT
// What communicator.cpp needs from the MPI backend, without <mpi.h>: so that MPI headers stay in
// comm/mpi/ and the factory compiles the same way in every build.
#pragma once

#include <memory>

#include "comm/communicator.h"

namespace dpt::comm::mpi {

// MPI_Init has run and MPI_Finalize has not. Callable from any thread, at any time.
bool is_running() noexcept;

// A new MpiCommunicator over (a duplicate of) MPI_COMM_WORLD. Collective: every rank calls it.
std::unique_ptr<Communicator> make_communicator();

// MPI_Abort(MPI_COMM_WORLD, code); std::_Exit(code) should MPI_Abort ever return.
[[noreturn]] void abort_job(int code) noexcept;

}  // namespace dpt::comm::mpi
