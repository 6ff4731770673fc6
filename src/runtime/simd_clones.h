// SPDX-License-Identifier: MIT
// DPT_SIMD_CLONES: a function compiled for x86-64-v4 (AVX-512), x86-64-v3 (AVX2) and the baseline,
// the loader picking the widest the CPU has (GCC target_clones). For loops whose every operation
// is exact or correctly rounded in any ISA (the build has -ffp-contract=off), so that every clone
// gives the same bits: Note [Exact sum dispatch] (runtime/exact_sum.cpp), Note [SIMD clones]
// (kernels/cpu/simd_loops.h).
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DPT_SIMD_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DPT_SIMD_CLONES
#endif
