// SPDX-License-Identifier: MIT
// GoogleTest main of the multi-rank GPU suites (labels gpu and mpi): tests/testing/mpi_test_main.cpp
// plus a GPU per rank. Each rank takes CUDA device local_rank % cuda_device_count(), and the job's
// communicator is comm::make_device_communicator over the MPI world (NCCL for device memory).
// Without a GPU, or when two ranks of a node would use one physical GPU (NCCL needs one GPU per
// rank; decided by GPU identity, so ranks that each see their own GPU run), every rank returns 77
// (CTest's SKIP_RETURN_CODE; mpiexec passes it on) after saying why; any other CUDA error, or
// DPT_REQUIRE_GPU=1 with a skip, makes every rank fail (testing/gpu_suite.h).
#include <gtest/gtest.h>

#include <exception>
#include <iostream>
#include <memory>
#include <string>

#include "comm/communicator.h"
#include "comm/gpu_placement.h"
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

// Whether this rank can run the suite. Every rank gathers the placements, so the shared-GPU
// check sees the whole job.
GpuSuiteDecision decide(dpt::comm::Communicator& host) {
  const bool require = require_gpu_from_environment();
  GpuSuiteDecision decision = gpu_suite_decision(dpt::probe_gpus(), require);
  // Collective: every rank takes part, with the CPU as its "device" when it has no GPU.
  const dpt::Device device = decision.verdict == GpuSuiteVerdict::kRun
                                 ? dpt::Device::cuda(host.local_rank() % dpt::cuda_device_count())
                                 : dpt::Device::cpu();
  const std::string shared = dpt::shared_gpu_error(dpt::comm::gather_gpu_placements(host, device));
  if (decision.verdict == GpuSuiteVerdict::kRun && !shared.empty()) {
    decision = gpu_suite_cannot_run("not enough GPUs for one per rank: " + shared, require);
  }
  return decision;
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
      // Every rank must agree: a rank that runs the tests alone would wait forever in the first
      // collective. 0 run, 1 skip, 2 fail; the job takes the worst.
      static_assert(static_cast<int>(dpt::test::GpuSuiteVerdict::kRun) <
                        static_cast<int>(dpt::test::GpuSuiteVerdict::kSkip) &&
                    static_cast<int>(dpt::test::GpuSuiteVerdict::kSkip) <
                        static_cast<int>(dpt::test::GpuSuiteVerdict::kFail));
      const dpt::test::GpuSuiteDecision decision = dpt::test::decide(*host);
      double verdict = static_cast<double>(decision.verdict);
      host->all_reduce(&verdict, 1, dpt::comm::ReduceOp::kMax);
      const auto job = static_cast<dpt::test::GpuSuiteVerdict>(static_cast<int>(verdict));
      if (job != dpt::test::GpuSuiteVerdict::kRun) {
        const std::string prefix =
            host->world_size() > 1 ? "[rank " + std::to_string(rank) + "] " : std::string();
        if (decision.verdict != dpt::test::GpuSuiteVerdict::kRun) {
          std::cout << prefix << decision.message << std::endl;
        } else if (rank == 0) {
          std::cout << prefix << "another rank cannot run this suite (see its line)" << std::endl;
        }
        // The communicator and MPI end in order first.
        return job == dpt::test::GpuSuiteVerdict::kSkip ? dpt::test::kSkipReturnCode
                                                        : dpt::test::kGpuFailureReturnCode;
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
