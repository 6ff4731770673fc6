// SPDX-License-Identifier: MIT
// The part every multi-rank GoogleTest main shares (tests/testing/mpi_test_main.cpp,
// tests/cuda/gpu_mpi_test_main.cpp).
#pragma once

#include "comm/communicator.h"

namespace dpt::test {

// RUN_ALL_TESTS on this rank of `comm`: only rank 0 prints GoogleTest's report (the others print
// their failures, prefixed by the rank), an unexpected log warning fails the running test, and
// the return value is the job's verdict, non-zero on every rank when any rank failed.
int run_all_tests_on_ranks(dpt::comm::Communicator& comm);

}  // namespace dpt::test
