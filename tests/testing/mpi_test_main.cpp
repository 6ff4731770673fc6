// SPDX-License-Identifier: MIT
// GoogleTest main of the multi-rank suites: MPI Environment, one Communicator for every test, only
// rank 0 prints GoogleTest's report (other ranks print their failures only), and the job's exit
// status is non-zero on every rank when any rank failed.
#include <gtest/gtest.h>

#include <exception>
#include <iostream>

#include "comm/communicator.h"
#include "runtime/error.h"
#include "testing/mpi_test_util.h"
#include "testing/run_on_ranks.h"

namespace dpt::test {
namespace {

// A plain pointer to the communicator main owns (no resource in static storage).
dpt::comm::Communicator* g_world = nullptr;

}  // namespace

dpt::comm::Communicator& world() {
  if (g_world == nullptr) {
    std::cerr << "dpt::test::world() used outside RUN_ALL_TESTS" << std::endl;
    std::abort();
  }
  return *g_world;
}

}  // namespace dpt::test

int main(int argc, char** argv) {
  try {
    dpt::comm::Environment environment(&argc, &argv);
    ::testing::InitGoogleTest(&argc, argv);
    int status = 0;
    {
      std::unique_ptr<dpt::comm::Communicator> comm = dpt::comm::make_communicator();
      dpt::test::g_world = comm.get();
      status = dpt::test::run_all_tests_on_ranks(*comm);
      dpt::test::g_world = nullptr;
    }  // the communicator is destroyed before MPI_Finalize (the Environment's destructor)
    return status;
  } catch (const std::exception& e) {
    std::cerr << "[rank " << dpt::process_rank() << "] fatal: " << e.what() << std::endl;
    dpt::comm::abort_all(2);
  }
}
