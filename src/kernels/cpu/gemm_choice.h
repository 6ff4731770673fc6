// SPDX-License-Identifier: MIT
// Which library runs each dense product on this machine's CPU: decided once per process from what
// oneDNN and OpenBLAS detect, by a fixed rule (never by timing, so the choice and with it the bits
// of every GEMM are the same in every run on the machine). See Note [GEMM per machine].
#pragma once

#include <string>

namespace dpt::kernels::cpu {

enum class GemmLibrary { kOneDnn, kOpenBlas };

struct GemmChoice {
  GemmLibrary backward_data = GemmLibrary::kOneDnn;  // dx = dy * w (the NN product)
  std::string isa;            // the ISA oneDNN dispatches to, e.g. "avx2", "avx512_core_amx"
  std::string openblas_core;  // the kernel set OpenBLAS picked, e.g. "Haswell", "Prescott"
  std::string reason;         // why backward_data is what it is, for the log
};

const char* to_string(GemmLibrary library);

// The rule on explicit facts (tested on its own): OpenBLAS for the NN product only where oneDNN
// runs AVX2 code (no AVX-512) and OpenBLAS has its tuned AVX2 kernels (core Haswell or Zen);
// `override_name` ("onednn", "openblas", or empty) wins when set; anything else is an error.
GemmChoice choose_gemm(const std::string& isa, const std::string& openblas_core,
                       const std::string& override_name);

// choose_gemm() on this machine's facts and DPT_CPU_GEMM, computed on first use.
const GemmChoice& gemm_choice();

}  // namespace dpt::kernels::cpu
