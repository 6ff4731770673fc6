// SPDX-License-Identifier: MIT
// For suites registered with MPI_RANKS: the communicator of the whole test job, created by
// tests/testing/mpi_test_main.cpp (MPI under mpiexec, the world of one otherwise).
#pragma once

#include "comm/communicator.h"

namespace dpt::test {

// Valid from the start of main's RUN_ALL_TESTS to its end.
dpt::comm::Communicator& world();

}  // namespace dpt::test
