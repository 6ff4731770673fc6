#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs what is missing, builds two variants and runs every test in both:
#   release: -Werror, DPT_CUDA=AUTO: the CUDA backend (cuDNN, cuBLASLt, NCCL) whenever nvcc is found;
#   asan:    ASan+UBSan, DPT_CUDA=OFF: the CPU-only build.
# Tests labelled gpu report "Skipped" where no GPU is visible.
# Usage: scripts/test.sh [--release-only]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/ccache}
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-2G}
jobs=$(nproc)

# Which backends a build directory holds, from its generated config.h.
backends() {
  if grep -q "define DPT_HAVE_CUDA 1" "$1/generated/runtime/config.h"; then
    echo "CPU + CUDA (cuDNN, cuBLASLt, NCCL)"
  else
    echo "CPU only"
  fi
}

cmake --preset release >/dev/null
cmake --build --preset release -j "$jobs"
echo "== release variant: $(backends build)"
ctest --preset release

if [[ "${1:-}" != "--release-only" ]]; then
  cmake --preset asan >/dev/null
  cmake --build --preset asan -j "$jobs"
  echo "== asan variant: $(backends build-asan)"
  # oneDNN, libgomp and Open MPI keep process-lifetime allocations: tests/lsan.supp names those
  # libraries, every other leak and every ASan/UBSan error fails the test. Suppressions match
  # only with full stacks: the fast unwinder stops at the first frame of a library built without
  # frame pointers (Open MPI), so it is off.
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1:fast_unwind_on_malloc=0"
  export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  ctest --preset asan
fi
