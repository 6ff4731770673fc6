// SPDX-License-Identifier: MIT
// The name of a oneDNN CPU ISA level, as the run summary (cpu_gemm) and dpt-limits print it.
// Header-only, so that the benchmarks that call oneDNN directly name the ISA the same way.
#pragma once

#include <dnnl.h>

namespace dpt::kernels::cpu {

inline const char* onednn_isa_name(dnnl_cpu_isa_t isa) {
  switch (isa) {
    case dnnl_cpu_isa_sse41:
      return "sse41";
    case dnnl_cpu_isa_avx:
      return "avx";
    case dnnl_cpu_isa_avx2:
      return "avx2";
    case dnnl_cpu_isa_avx2_vnni:
      return "avx2_vnni";
    case dnnl_cpu_isa_avx512_mic:
      return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops:
      return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core:
      return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni:
      return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16:
      return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx:
      return "avx512_core_amx";
    default:
      break;
  }
  // dnnl_cpu_isa_t values are bit sets; every later AVX-512 level includes avx512_core's bits.
  const auto core = static_cast<unsigned>(dnnl_cpu_isa_avx512_core);
  return (static_cast<unsigned>(isa) & core) == core ? "avx512" : "unknown";
}

}  // namespace dpt::kernels::cpu
