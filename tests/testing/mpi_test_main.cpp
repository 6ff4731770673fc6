// SPDX-License-Identifier: MIT
// GoogleTest main of the multi-rank suites: MPI Environment, one Communicator for every test, only
// rank 0 prints GoogleTest's report (other ranks print their failures only), and the job's exit
// status is non-zero on every rank when any rank failed.
#include <gtest/gtest.h>

#include <exception>
#include <iostream>

#include "comm/communicator.h"
#include "runtime/logging.h"
#include "testing/mpi_test_util.h"
#include "testing/rank_failure_printer.h"
#include "testing/test_util.h"

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
      if (comm->rank() != 0) {
        ::testing::TestEventListeners& listeners = ::testing::UnitTest::GetInstance()->listeners();
        delete listeners.Release(listeners.default_result_printer());
        listeners.Append(new dpt::test::RankFailurePrinter(comm->rank()));
      }
      dpt::set_log_sink([](dpt::LogLevel level, const std::string& message) {
        if (level >= dpt::LogLevel::kWarning && !dpt::test::warnings_allowed()) {
          ADD_FAILURE() << "unexpected log warning: " << message;
        }
      });
      dpt::test::g_world = comm.get();
      status = RUN_ALL_TESTS();
      dpt::test::g_world = nullptr;
      // Every rank returns the job's verdict, not only its own: a rank that passed must not
      // report success for a job where another rank failed. (mpiexec would fail the job anyway
      // when any rank exits non-zero; this also makes each rank's log say so.)
      double failed = status != 0 ? 1.0 : 0.0;
      comm->all_reduce(&failed, 1, dpt::comm::ReduceOp::kMax);
      if (failed != 0.0 && status == 0) {
        std::cout << "[rank " << comm->rank() << "] another rank failed" << std::endl;
        status = 1;
      }
      dpt::set_log_sink(nullptr);
    }  // the communicator is destroyed before MPI_Finalize (the Environment's destructor)
    return status;
  } catch (const std::exception& e) {
    std::cerr << "[rank " << dpt::process_rank() << "] fatal: " << e.what() << std::endl;
    dpt::comm::abort_all(2);
  }
}
