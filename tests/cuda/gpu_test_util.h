// SPDX-License-Identifier: MIT
// Shared by the GPU suites of tests/cuda/: the skip protocol of their mains (exit status 77 with
// one line saying why, registered as CTest's SKIP_RETURN_CODE) and, for the multi-rank suite, the
// device communicator that gpu_mpi_test_main.cpp creates.
#pragma once

#include <string>

#include "comm/communicator.h"
#include "runtime/device.h"

namespace dpt::test {

// What a GPU suite's main returns when it cannot run here; CTest reports the test as skipped.
inline constexpr int kSkipReturnCode = 77;

// "SKIPPED: no CUDA device (<what CUDA said>); run this suite on a GPU machine: ctest -L gpu".
inline std::string no_gpu_message() {
  return "SKIPPED: no CUDA device (" + dpt::cuda_unavailable_reason() +
         "); run this suite on a GPU machine: ctest -L gpu";
}

// For suites linked with gpu_mpi_test_main.cpp, valid during RUN_ALL_TESTS:
// the CUDA device of this rank (local_rank % cuda_device_count()) ...
int gpu_device();
// ... and the job's communicator made by comm::make_device_communicator over the MPI (or local)
// world on that device: float collectives on device memory run on NCCL, on host memory on the
// host communicator. test::world() (testing/mpi_test_util.h) returns the same object.
dpt::comm::Communicator& device_world();

}  // namespace dpt::test
