// SPDX-License-Identifier: MIT
#include "kernels/cpu/gemm_choice.h"

#include <cblas.h>
#include <dnnl.h>

#include <cstdlib>

#include "kernels/cpu/onednn_isa.h"
#include "runtime/check.h"

extern "C" char* openblas_get_corename(void);

namespace dpt::kernels::cpu {

// Note [GEMM per machine]
// ~~~~~~~~~~~~~~~~~~~~~~~
// Measured at the mlp's shapes (batch 128, 1 thread, GFLOP/s best of 8; docs/benchmarks.md):
// - AMD EPYC, AVX2: OpenBLAS (core Haswell/Zen) runs the NN product dx = dy * w steadily (13-16 ms
//   at 128x2048x2048) while oneDNN's matmul and dnnl_sgemm take 15-36 ms depending on where w
//   starts relative to a page; dnnl_sgemm is the fastest TN product (backward-weights).
// - Intel Xeon (model 207), AVX-512: OpenBLAS 0.3.21 does not know the model and falls back to
//   its SSE3 "Prescott" kernels: 15-28 GFLOP/s against 90-145 for dnnl_sgemm on every product.
//   With OPENBLAS_CORETYPE=Haswell OpenBLAS reaches 50-75, still below oneDNN's AVX-512 code.
// oneMKL was measured too (PyPI's mkl 2024.2): on the Xeon no better than dnnl_sgemm at these
// shapes, and a 190 MB dependency; BLIS 0.9 reached 30-75. So: oneDNN everywhere except the NN
// product on an AVX2 machine whose OpenBLAS runs its tuned AVX2 kernels. The choice looks at
// facts the libraries report, never at timings, so it is the same in every run on a machine.

const char* to_string(GemmLibrary library) {
  return library == GemmLibrary::kOpenBlas ? "openblas" : "onednn";
}

GemmChoice choose_gemm(const std::string& isa, const std::string& openblas_core,
                       const std::string& override_name) {
  GemmChoice c;
  c.isa = isa;
  c.openblas_core = openblas_core;
  if (!override_name.empty()) {
    DPT_CHECK(override_name == "onednn" || override_name == "openblas",
              "DPT_CPU_GEMM: expected 'onednn' or 'openblas', got '", override_name, "'");
    c.backward_data =
        override_name == "openblas" ? GemmLibrary::kOpenBlas : GemmLibrary::kOneDnn;
    c.reason = "set by DPT_CPU_GEMM";
    return c;
  }
  const bool avx2_only = isa == "avx2" || isa == "avx2_vnni";
  const bool tuned_openblas = openblas_core == "Haswell" || openblas_core == "Zen";
  if (avx2_only && tuned_openblas) {
    c.backward_data = GemmLibrary::kOpenBlas;
    c.reason = "AVX2 machine with OpenBLAS's " + openblas_core + " kernels";
  } else {
    c.backward_data = GemmLibrary::kOneDnn;
    c.reason = avx2_only ? "OpenBLAS runs its generic " + openblas_core + " kernels here"
                         : "oneDNN runs " + isa + " code";
  }
  return c;
}

const GemmChoice& gemm_choice() {
  static const GemmChoice choice = [] {
    const char* core = openblas_get_corename();
    const char* forced = std::getenv("DPT_CPU_GEMM");
    const dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    return choose_gemm(onednn_isa_name(isa), core ? core : "unknown", forced ? forced : "");
  }();
  return choice;
}

}  // namespace dpt::kernels::cpu
