// SPDX-License-Identifier: MIT
// Shared by the GPU suites of tests/cuda/: the skip protocol of their mains (testing/gpu_suite.h:
// exit 77 with one line saying why only where there is no GPU; any other CUDA error, or
// DPT_REQUIRE_GPU=1, fails) and, for the multi-rank suite, the device communicator that
// gpu_mpi_test_main.cpp creates.
#pragma once

#include <string>

#include "comm/communicator.h"
#include "runtime/device.h"
#include "testing/gpu_suite.h"

namespace dpt::test {

// For suites linked with gpu_mpi_test_main.cpp, valid during RUN_ALL_TESTS:
// the CUDA device of this rank (local_rank % cuda_device_count()) ...
int gpu_device();
// ... and the job's communicator made by comm::make_device_communicator over the MPI (or local)
// world on that device: float collectives on device memory run on NCCL, on host memory on the
// host communicator. test::world() (testing/mpi_test_util.h) returns the same object.
dpt::comm::Communicator& device_world();

}  // namespace dpt::test
