// SPDX-License-Identifier: MIT
// --device resolution and the GPU of each rank, on whatever this machine has: "cpu" always works;
// "auto" is the CPU without a GPU; "cuda"/"cuda:N" without a GPU are kCuda errors that say what
// CUDA reported and end with "use --device cpu"; malformed specs are kInvalidArgument whatever the
// machine; device_for_local_rank leaves the CPU alone and refuses ranks sharing a GPU (more ranks
// than GPUs, or several ranks given one cuda:N) unless sharing is allowed. A CPU-only build refuses CUDA tensors and contexts with a dpt::Error.
#include <gtest/gtest.h>

#include <string>

#include "runtime/config.h"
#include "runtime/context.h"
#include "runtime/device.h"
#include "runtime/error.h"
#include "runtime/tensor.h"

namespace dpt {
namespace {

bool has_gpu() { return cuda_device_count() > 0; }

// Runs fn, expects a dpt::Error of `kind`, returns it (kInternal with "no error" otherwise).
template <typename Fn>
Error error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e;
  } catch (const std::exception& e) {
    return Error(ErrorKind::kInternal, std::string("not a dpt::Error: ") + e.what());
  }
  return Error(ErrorKind::kInternal, "no error");
}

TEST(Device, Names) {
  EXPECT_EQ(to_string(Device::cpu()), "cpu");
  EXPECT_EQ(to_string(Device::cuda(0)), "cuda:0");
  EXPECT_EQ(to_string(Device::cuda(3)), "cuda:3");
  EXPECT_NE(Device::cuda(0), Device::cuda(1));
  EXPECT_NE(Device::cpu(), Device::cuda(0));
}

TEST(Device, CpuResolvesToTheCpu) { EXPECT_EQ(resolve_device("cpu"), Device::cpu()); }

TEST(Device, AutoIsTheCpuWithoutAGpuAndCuda0WithOne) {
  EXPECT_EQ(resolve_device("auto"), has_gpu() ? Device::cuda(0) : Device::cpu());
}

TEST(Device, CudaBuiltMatchesTheBuildConfiguration) {
  EXPECT_EQ(cuda_built(), DPT_HAVE_CUDA != 0);
  if (!cuda_built()) {
    EXPECT_EQ(cuda_device_count(), 0);
  }
  // Every counted device can be described, and the index after the last is refused.
  const int count = cuda_device_count();
  for (int i = 0; i < count; ++i) {
    EXPECT_TRUE(describe(Device::cuda(i)).starts_with("cuda:" + std::to_string(i) + " ("))
        << describe(Device::cuda(i));
  }
  EXPECT_THROW(resolve_device("cuda:" + std::to_string(count)), Error);
  // A reason exactly when no GPU can be used.
  EXPECT_EQ(cuda_unavailable_reason().empty(), has_gpu()) << "'" << cuda_unavailable_reason() << "'";
}

TEST(Device, CudaWithoutAGpuIsACudaErrorThatSaysUseDeviceCpu) {
  if (has_gpu()) GTEST_SKIP() << "a GPU is visible here; the no-GPU error cannot happen";
  for (const char* spec : {"cuda", "cuda:0", "cuda:1"}) {
    SCOPED_TRACE(spec);
    const Error e = error_of([&] { resolve_device(spec); });
    EXPECT_EQ(e.kind(), ErrorKind::kCuda) << e.what();
    EXPECT_TRUE(e.message().ends_with("use --device cpu")) << "message: " << e.message();
    // What CUDA (or the build) said is part of it.
    EXPECT_NE(e.message().find(cuda_unavailable_reason()), std::string::npos) << e.message();
    EXPECT_NE(e.message().find(spec), std::string::npos) << "names the spec: " << e.message();
  }
}

TEST(Device, CudaWithAGpuResolvesAndTooLargeAnIndexIsRefused) {
  if (!has_gpu()) GTEST_SKIP() << "no GPU here: " << cuda_unavailable_reason();
  const int count = cuda_device_count();
  EXPECT_EQ(resolve_device("cuda"), Device::cuda(0));
  EXPECT_EQ(resolve_device("cuda:0"), Device::cuda(0));
  EXPECT_EQ(resolve_device("cuda:" + std::to_string(count - 1)), Device::cuda(count - 1));
  const Error e = error_of([&] { resolve_device("cuda:" + std::to_string(count)); });
  EXPECT_EQ(e.kind(), ErrorKind::kCuda) << e.what();
  EXPECT_NE(e.message().find("use --device cpu"), std::string::npos) << e.message();
}

TEST(Device, MalformedSpecsAreInvalidArgumentsOnAnyMachine) {
  for (const char* spec : {"cuda:", "cuda:x", "cuda:-1", "cuda:1x", "cuda: 1", "cuda0", "gpu", "",
                           "cpu:0", "auto "}) {
    SCOPED_TRACE(::testing::Message() << "'" << spec << "'");
    const Error e = error_of([&] { resolve_device(spec); });
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument) << e.what();
    EXPECT_NE(e.message().find(std::string("'") + spec + "'"), std::string::npos)
        << "quotes the spec: " << e.message();
  }
}

TEST(Device, DeviceForLocalRankLeavesTheCpuAndExplicitIndicesAlone) {
  EXPECT_EQ(device_for_local_rank(Device::cpu(), false, 0, 1, false), Device::cpu());
  EXPECT_EQ(device_for_local_rank(Device::cpu(), false, 5, 8, false), Device::cpu());
  EXPECT_EQ(device_for_local_rank(Device::cpu(), true, 3, 4, true), Device::cpu());
  // cuda:N given explicitly: that GPU (resolve_device checked it exists), for a single rank on
  // the node, or for all of them when sharing is allowed.
  EXPECT_EQ(device_for_local_rank(Device::cuda(1), true, 0, 1, false), Device::cuda(1));
  EXPECT_EQ(device_for_local_rank(Device::cuda(1), true, 2, 4, true), Device::cuda(1));
}

TEST(Device, SeveralRanksOnOneExplicitGpuAreRefusedUnlessAllowed) {
  const Error e = error_of([] { device_for_local_rank(Device::cuda(1), true, 0, 4, false); });
  EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument) << e.what();
  EXPECT_NE(e.message().find("--allow-shared-gpu"), std::string::npos) << e.message();
}

TEST(Device, DeviceForLocalRankWithoutAGpuIsACudaError) {
  if (has_gpu()) GTEST_SKIP() << "a GPU is visible here";
  const Error e = error_of([] { device_for_local_rank(Device::cuda(0), false, 0, 1, false); });
  EXPECT_EQ(e.kind(), ErrorKind::kCuda) << e.what();
  EXPECT_TRUE(e.message().ends_with("use --device cpu")) << e.message();
}

TEST(Device, DeviceForLocalRankSpreadsRanksAndRefusesSharingUnlessAllowed) {
  if (!has_gpu()) GTEST_SKIP() << "no GPU here: " << cuda_unavailable_reason();
  const int count = cuda_device_count();
  for (int rank = 0; rank < count; ++rank) {
    EXPECT_EQ(device_for_local_rank(Device::cuda(0), false, rank, count, false), Device::cuda(rank));
  }
  const Error e = error_of([&] { device_for_local_rank(Device::cuda(0), false, count, count + 1, false); });
  EXPECT_NE(e.kind(), ErrorKind::kInternal) << e.what();
  EXPECT_NE(e.message().find("--allow-shared-gpu"), std::string::npos) << e.message();
  EXPECT_EQ(device_for_local_rank(Device::cuda(0), false, count, count + 1, true), Device::cuda(0));
  EXPECT_EQ(device_for_local_rank(Device::cuda(0), false, count + 1, count + 2, true),
            Device::cuda(1 % count));
}

TEST(Device, CpuContextAndActivationNeedNoGpu) {
  activate_device(Device::cpu());
  const Context ctx = Context::create(Device::cpu(), 1);
  EXPECT_EQ(ctx.device(), Device::cpu());
}

TEST(Device, CudaTensorsAndContextsWithoutAGpuAreDptErrors) {
  if (has_gpu()) GTEST_SKIP() << "a GPU is visible here";
  // CPU-only build: "not built into this binary"; CUDA build on a machine without a GPU: what
  // CUDA said. Either way an exception, never a crash.
  const Error empty = error_of([] { Tensor::empty({4}, DType::kF32, Device::cuda(0)); });
  EXPECT_NE(empty.kind(), ErrorKind::kInternal) << empty.what();
  const Error zeros = error_of([] { Tensor::zeros({2, 3}, DType::kF32, Device::cuda(0)); });
  EXPECT_NE(zeros.kind(), ErrorKind::kInternal) << zeros.what();
  const Error to = error_of([] { Tensor::full({3}, 1.0f).to(Device::cuda(0)); });
  EXPECT_NE(to.kind(), ErrorKind::kInternal) << to.what();
  const Error ctx = error_of([] { Context::create(Device::cuda(0), 1); });
  EXPECT_NE(ctx.kind(), ErrorKind::kInternal) << ctx.what();
  const Error activate = error_of([] { activate_device(Device::cuda(0)); });
  EXPECT_NE(activate.kind(), ErrorKind::kInternal) << activate.what();
}

#if !DPT_HAVE_CUDA
TEST(Device, CpuOnlyBuildSaysCudaIsNotBuiltIn) {
  EXPECT_FALSE(cuda_built());
  EXPECT_EQ(cuda_device_count(), 0);
  EXPECT_NE(cuda_unavailable_reason().find("DPT_CUDA"), std::string::npos)
      << "tells how to get a CUDA build: " << cuda_unavailable_reason();
  const Error e = error_of([] { Tensor::empty({4}, DType::kF32, Device::cuda(0)); });
  EXPECT_NE(e.message().find("cuda:0"), std::string::npos) << e.what();
}
#endif

}  // namespace
}  // namespace dpt
