// SPDX-License-Identifier: MIT
// GoogleTest main of the multi-rank GPU suites (labels gpu and mpi): tests/testing/mpi_test_main.cpp
// plus a GPU per rank. Each rank takes CUDA device local_rank % cuda_device_count(), and the job's
// communicator is comm::make_device_communicator over the MPI world (NCCL for device memory).
// Without a GPU, or with fewer GPUs on a node than ranks on it (NCCL needs one GPU per rank),
// every rank returns 77 (CTest's SKIP_RETURN_CODE; mpiexec passes it on) after saying why.
#include <gtest/gtest.h>

#include <exception>
#include <iostream>
#include <memory>
#include <string>

#include "comm/communicator.h"
#include "gpu_test_util.h"
#include "runtime/device.h"
#include "runtime/error.h"
#include "testing/mpi_test_util.h"
#include "testing/run_on_ranks.h"

namespace dpt::test {
namespace {

// Plain pointers to what main owns (no resource in static storage).
dpt::comm::Communicator* g_world = nullptr;
int g_device = -1;

// Why this rank cannot run the suite ("" when it can).
std::string skip_reason(const dpt::comm::Communicator& host) {
  const int count = dpt::cuda_device_count();
  if (count == 0) return no_gpu_message();
  if (count < host.local_size()) {
    return "SKIPPED: " + std::to_string(host.local_size()) + " ranks on this node but only " +
           std::to_string(count) +
           " CUDA device(s) visible; NCCL needs a GPU of its own per rank: run this suite on a "
           "machine with enough GPUs (ctest -L gpu)";
  }
  return "";
}

}  // namespace

dpt::comm::Communicator& world() {
  if (g_world == nullptr) {
    std::cerr << "dpt::test::world() used outside RUN_ALL_TESTS" << std::endl;
    std::abort();
  }
  return *g_world;
}

dpt::comm::Communicator& device_world() { return world(); }

int gpu_device() {
  if (g_device < 0) {
    std::cerr << "dpt::test::gpu_device() used outside RUN_ALL_TESTS" << std::endl;
    std::abort();
  }
  return g_device;
}

}  // namespace dpt::test

int main(int argc, char** argv) {
  try {
    dpt::comm::Environment environment(&argc, &argv);
    ::testing::InitGoogleTest(&argc, argv);
    int status = 0;
    {
      std::unique_ptr<dpt::comm::Communicator> host = dpt::comm::make_communicator();
      const int rank = host->rank();
      // Every rank must agree on skipping: a rank that runs the tests alone would wait forever in
      // the first collective.
      const std::string why = dpt::test::skip_reason(*host);
      double skip = why.empty() ? 0.0 : 1.0;
      host->all_reduce(&skip, 1, dpt::comm::ReduceOp::kMax);
      if (skip != 0.0) {
        const std::string prefix =
            host->world_size() > 1 ? "[rank " + std::to_string(rank) + "] " : std::string();
        if (!why.empty()) {
          std::cout << prefix << why << std::endl;
        } else if (rank == 0) {
          std::cout << prefix << "SKIPPED: another rank has no usable GPU (see its line)"
                    << std::endl;
        }
        return dpt::test::kSkipReturnCode;  // the communicator and MPI end in order first
      }
      const int device = host->local_rank() % dpt::cuda_device_count();
      dpt::activate_device(dpt::Device::cuda(device));
      std::unique_ptr<dpt::comm::Communicator> comm =
          dpt::comm::make_device_communicator(std::move(host), device);
      dpt::test::g_world = comm.get();
      dpt::test::g_device = device;
      status = dpt::test::run_all_tests_on_ranks(*comm);
      dpt::test::g_world = nullptr;
      dpt::test::g_device = -1;
    }  // the communicators are destroyed before MPI_Finalize (the Environment's destructor)
    return status;
  } catch (const std::exception& e) {
    std::cerr << "[rank " << dpt::process_rank() << "] fatal: " << e.what() << std::endl;
    dpt::comm::abort_all(2);
  }
}
