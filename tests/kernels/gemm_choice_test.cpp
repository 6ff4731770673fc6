// SPDX-License-Identifier: MIT
// The rule that picks the CPU's GEMM library per machine (Note [GEMM per machine]), on stated
// facts, and the process's own choice honouring DPT_CPU_GEMM (ctest runs the linear-layer tests
// once under each library: kernels_linear_onednn / kernels_linear_openblas).
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "kernels/cpu/gemm_choice.h"
#include "kernels/ops.h"
#include "runtime/error.h"

namespace dpt::kernels::cpu {
namespace {

TEST(GemmChoice, OpenBlasOnlyForAvx2WithTunedKernels) {
  EXPECT_EQ(choose_gemm("avx2", "Haswell", "").backward_data, GemmLibrary::kOpenBlas);
  EXPECT_EQ(choose_gemm("avx2", "Zen", "").backward_data, GemmLibrary::kOpenBlas);
  EXPECT_EQ(choose_gemm("avx2_vnni", "Haswell", "").backward_data, GemmLibrary::kOpenBlas);
  // OpenBLAS's generic kernels (an unknown CPU model) and every AVX-512 machine: oneDNN.
  EXPECT_EQ(choose_gemm("avx2", "Prescott", "").backward_data, GemmLibrary::kOneDnn);
  EXPECT_EQ(choose_gemm("avx512_core", "SkylakeX", "").backward_data, GemmLibrary::kOneDnn);
  EXPECT_EQ(choose_gemm("avx512_core_amx", "Prescott", "").backward_data, GemmLibrary::kOneDnn);
  EXPECT_EQ(choose_gemm("sse41", "Haswell", "").backward_data, GemmLibrary::kOneDnn);
  const GemmChoice c = choose_gemm("avx512_core", "Prescott", "");
  EXPECT_EQ(c.isa, "avx512_core");
  EXPECT_EQ(c.openblas_core, "Prescott");
  EXPECT_NE(c.reason.find("avx512_core"), std::string::npos) << c.reason;
}

TEST(GemmChoice, OverrideWinsAndIsValidated) {
  EXPECT_EQ(choose_gemm("avx512_core", "SkylakeX", "openblas").backward_data,
            GemmLibrary::kOpenBlas);
  EXPECT_EQ(choose_gemm("avx2", "Haswell", "onednn").backward_data, GemmLibrary::kOneDnn);
  try {
    choose_gemm("avx2", "Haswell", "mkl");
    FAIL() << "an unknown library was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("DPT_CPU_GEMM"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'mkl'"), std::string::npos) << e.what();
  }
}

TEST(GemmChoice, ThisProcessFollowsTheEnvironment) {
  const char* forced = std::getenv("DPT_CPU_GEMM");
  const CpuGemmFacts facts = cpu_gemm_facts();
  EXPECT_FALSE(facts.isa.empty());
  EXPECT_FALSE(facts.openblas_core.empty());
  if (forced != nullptr) {
    EXPECT_EQ(facts.backward_data, forced);
  }
  EXPECT_TRUE(facts.backward_data == "onednn" || facts.backward_data == "openblas");
}

}  // namespace
}  // namespace dpt::kernels::cpu
