// SPDX-License-Identifier: MIT
// --device resolution and the GPU of each rank, on whatever this machine has: "cpu" always works;
// "auto" is the CPU without a GPU; "cuda"/"cuda:N" without a GPU are kCuda errors that say what
// CUDA reported and end with "use --device cpu"; malformed specs are kInvalidArgument whatever the
// machine; device_for_local_rank leaves the CPU alone and spreads ranks over the visible GPUs;
// shared_gpu_error refuses two ranks of one node on one physical GPU (by identity, never by
// counting ranks against visible GPUs); the decision of a GPU suite's main (run, skip only without
// a GPU, fail otherwise or under DPT_REQUIRE_GPU=1). A CPU-only build refuses CUDA tensors and
// contexts with a dpt::Error.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "runtime/config.h"
#include "runtime/context.h"
#include "runtime/device.h"
#include "runtime/error.h"
#include "runtime/tensor.h"
#include "testing/gpu_suite.h"

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
  EXPECT_EQ(device_for_local_rank(Device::cpu(), false, 0), Device::cpu());
  EXPECT_EQ(device_for_local_rank(Device::cpu(), false, 5), Device::cpu());
  EXPECT_EQ(device_for_local_rank(Device::cpu(), true, 3), Device::cpu());
  // cuda:N given explicitly: that GPU (resolve_device checked it exists), on every local rank;
  // whether ranks then share a GPU is shared_gpu_error's call, by identity.
  EXPECT_EQ(device_for_local_rank(Device::cuda(1), true, 0), Device::cuda(1));
  EXPECT_EQ(device_for_local_rank(Device::cuda(1), true, 2), Device::cuda(1));
}

TEST(Device, DeviceForLocalRankWithoutAGpuIsACudaError) {
  if (has_gpu()) GTEST_SKIP() << "a GPU is visible here";
  const Error e = error_of([] { device_for_local_rank(Device::cuda(0), false, 0); });
  EXPECT_EQ(e.kind(), ErrorKind::kCuda) << e.what();
  EXPECT_TRUE(e.message().ends_with("use --device cpu")) << e.message();
}

TEST(Device, DeviceForLocalRankSpreadsRanksOverTheVisibleGpus) {
  if (!has_gpu()) GTEST_SKIP() << "no GPU here: " << cuda_unavailable_reason();
  const int count = cuda_device_count();
  for (int rank = 0; rank < 2 * count; ++rank) {
    EXPECT_EQ(device_for_local_rank(Device::cuda(0), false, rank), Device::cuda(rank % count));
  }
}

// Placements as ranks report them: node, GPU identity, device name.
GpuPlacement at(const char* host, const char* gpu, const char* device = "cuda:0") {
  return GpuPlacement{host, gpu, device};
}

TEST(SharedGpu, RanksThatEachSeeTheirOwnGpuAreAccepted) {
  // SLURM --gpus-per-task=1 or CUDA_VISIBLE_DEVICES per rank: every rank sees one GPU, cuda:0,
  // and local ranks outnumber the GPUs each one sees; the identities differ, so all is well.
  EXPECT_EQ(shared_gpu_error({at("n1", "GPU-aaaa"), at("n1", "GPU-bbbb"), at("n1", "GPU-cccc"),
                              at("n1", "GPU-dddd")}),
            "");
  // One GPU each on two nodes whose GPUs happen to share nothing but the local index.
  EXPECT_EQ(shared_gpu_error({at("n1", "GPU-aaaa"), at("n2", "GPU-bbbb")}), "");
  // The same identity on two nodes is two GPUs (a node is part of the key).
  EXPECT_EQ(shared_gpu_error({at("n1", "GPU-aaaa"), at("n2", "GPU-aaaa")}), "");
  // Ranks on the CPU share nothing.
  EXPECT_EQ(shared_gpu_error({at("n1", "", "cpu"), at("n1", "", "cpu")}), "");
  EXPECT_EQ(shared_gpu_error({}), "");
}

TEST(SharedGpu, TwoRanksOfANodeOnOneGpuAreRefusedByName) {
  const std::string e =
      shared_gpu_error({at("n1", "GPU-aaaa", "cuda:0"), at("n1", "GPU-bbbb", "cuda:1"),
                        at("n2", "GPU-cccc", "cuda:0"), at("n2", "GPU-cccc", "cuda:1")});
  ASSERT_FALSE(e.empty());
  EXPECT_NE(e.find("ranks 2 (cuda:0) and 3 (cuda:1) on node n2"), std::string::npos) << e;
  EXPECT_NE(e.find("GPU-cccc"), std::string::npos) << e;
  EXPECT_NE(e.find("NCCL"), std::string::npos) << "says why: " << e;
  EXPECT_EQ(e.find("--allow-shared-gpu"), std::string::npos) << "offers no way to share: " << e;
  // More ranks than GPUs with every rank seeing all of them: rank 2 wraps onto rank 0's GPU.
  const std::string wrapped = shared_gpu_error(
      {at("n1", "GPU-aaaa", "cuda:0"), at("n1", "GPU-bbbb", "cuda:1"), at("n1", "GPU-aaaa", "cuda:0")});
  EXPECT_NE(wrapped.find("ranks 0 (cuda:0) and 2 (cuda:0) on node n1"), std::string::npos)
      << wrapped;
}

TEST(GpuSuite, SkipsOnlyWithoutAGpu) {
  using test::GpuSuiteVerdict;
  const auto verdict = [](GpuProbeStatus status, bool require) {
    return test::gpu_suite_decision(GpuProbe{status, status == GpuProbeStatus::kAvailable ? 1 : 0,
                                             "what CUDA said"},
                                    require);
  };
  EXPECT_EQ(verdict(GpuProbeStatus::kAvailable, false).verdict, GpuSuiteVerdict::kRun);
  EXPECT_EQ(verdict(GpuProbeStatus::kAvailable, true).verdict, GpuSuiteVerdict::kRun);
  for (GpuProbeStatus none :
       {GpuProbeStatus::kNoDriver, GpuProbeStatus::kNoDevice, GpuProbeStatus::kNotBuilt}) {
    SCOPED_TRACE(to_string(none));
    const test::GpuSuiteDecision skip = verdict(none, false);
    EXPECT_EQ(skip.verdict, GpuSuiteVerdict::kSkip);
    EXPECT_EQ(test::exit_status(skip), 77);
    EXPECT_TRUE(skip.message.starts_with("SKIPPED: ")) << skip.message;
    EXPECT_NE(skip.message.find("what CUDA said"), std::string::npos) << skip.message;
    // DPT_REQUIRE_GPU=1: the same machine fails.
    const test::GpuSuiteDecision required = verdict(none, true);
    EXPECT_EQ(required.verdict, GpuSuiteVerdict::kFail);
    EXPECT_NE(test::exit_status(required), 77);
    EXPECT_NE(test::exit_status(required), 0);
    EXPECT_NE(required.message.find("DPT_REQUIRE_GPU"), std::string::npos) << required.message;
  }
  // A driver that cannot use its GPUs (too old, system not ready) fails with CUDA's words.
  for (bool require : {false, true}) {
    const test::GpuSuiteDecision broken = verdict(GpuProbeStatus::kError, require);
    EXPECT_EQ(broken.verdict, GpuSuiteVerdict::kFail);
    EXPECT_NE(test::exit_status(broken), 77);
    EXPECT_NE(broken.message.find("what CUDA said"), std::string::npos) << broken.message;
  }
}

TEST(GpuSuite, ARankThatCannotRunSkipsUnlessAGpuIsRequired) {
  EXPECT_EQ(test::gpu_suite_cannot_run("2 ranks, 1 GPU", false).verdict, test::GpuSuiteVerdict::kSkip);
  EXPECT_EQ(test::gpu_suite_cannot_run("2 ranks, 1 GPU", true).verdict, test::GpuSuiteVerdict::kFail);
}

TEST(GpuSuite, RequireGpuComesFromTheEnvironment) {
  const char* saved = std::getenv("DPT_REQUIRE_GPU");
  const std::string before = saved ? saved : "";
  setenv("DPT_REQUIRE_GPU", "1", 1);
  EXPECT_TRUE(test::require_gpu_from_environment());
  setenv("DPT_REQUIRE_GPU", "0", 1);
  EXPECT_FALSE(test::require_gpu_from_environment());
  unsetenv("DPT_REQUIRE_GPU");
  EXPECT_FALSE(test::require_gpu_from_environment());
  if (saved) setenv("DPT_REQUIRE_GPU", before.c_str(), 1);
}

TEST(Device, ProbeAgreesWithTheDeviceCount) {
  const GpuProbe probe = probe_gpus();
  EXPECT_EQ(probe.status == GpuProbeStatus::kAvailable, cuda_device_count() > 0);
  EXPECT_EQ(probe.count, cuda_device_count());
  if (!cuda_built()) {
    EXPECT_EQ(probe.status, GpuProbeStatus::kNotBuilt);
  }
}

TEST(Device, CpuContextAndActivationNeedNoGpu) {
  activate_device(Device::cpu());
  const Context ctx = Context::create(Device::cpu(), 1);
  EXPECT_EQ(ctx.device(), Device::cpu());
}

// TF32 is a GPU tensor-core format: a CPU context cannot honour it, so allowing it there throws
// (a flag that a backend would silently ignore), and refusing it is always fine.
TEST(Device, Tf32IsRefusedOnACpuContext) {
  Context ctx = Context::create(Device::cpu(), 1);
  EXPECT_FALSE(ctx.allow_tf32());
  const Error error = error_of([&] { ctx.set_allow_tf32(true); });
  EXPECT_NE(std::string(error.what()).find("TF32"), std::string::npos) << error.what();
  EXPECT_NE(std::string(error.what()).find("cpu"), std::string::npos) << error.what();
  EXPECT_FALSE(ctx.allow_tf32());
  ctx.set_allow_tf32(false);
  EXPECT_FALSE(ctx.allow_tf32());
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
