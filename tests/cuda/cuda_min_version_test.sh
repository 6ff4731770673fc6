#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# cmake/DptCuda.cmake against too old a cuDNN or NCCL (fake headers that claim cuDNN 7.6 and NCCL
# 2.12, the rest of the real install): DPT_CUDA=ON stops with a message naming the library, its
# version and the minimum; DPT_CUDA=AUTO configures a CPU-only build and says why.
# Usage: cuda_min_version_test.sh SOURCE_DIR NCCL_INCLUDE_DIR CUDNN_INCLUDE_DIR
set -uo pipefail
src=$1 nccl_include=$2 cudnn_include=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
ok() { echo "ok   $*"; }
mkdir -p "$work/nccl" "$work/cudnn"
sed -E 's/^#define NCCL_MINOR[[:space:]]+[0-9]+/#define NCCL_MINOR 12/' "$nccl_include/nccl.h" >"$work/nccl/nccl.h"
cp "$cudnn_include"/cudnn*.h "$work/cudnn/"
sed -E -e 's/^#define CUDNN_MAJOR[[:space:]]+[0-9]+/#define CUDNN_MAJOR 7/' \
  -e 's/^#define CUDNN_MINOR[[:space:]]+[0-9]+/#define CUDNN_MINOR 6/' \
  "$cudnn_include/cudnn_version.h" >"$work/cudnn/cudnn_version.h"

out=$(cmake -S "$src" -B "$work/on" -G Ninja -DDPT_CUDA=ON -DDPT_NCCL_INCLUDE_DIR="$work/nccl" 2>&1)
rc=$?
line=$(tr '\n' ' ' <<<"$out" | tr -s ' ')
if [[ $rc -ne 0 ]] && grep -q "DPT_CUDA=ON but NCCL 2.12.[0-9]* (.*nccl.h) is older than 2.14" <<<"$line"; then
  ok "DPT_CUDA=ON with NCCL 2.12: configure fails and says why"
else
  fail "DPT_CUDA=ON with NCCL 2.12: exit $rc"; echo "$out" | grep -A4 -i -e error -e dptrain
fi

out=$(cmake -S "$src" -B "$work/auto" -G Ninja -DDPT_CUDA=AUTO -DDPT_CUDNN_INCLUDE_DIR="$work/cudnn" 2>&1)
rc=$?
if [[ $rc -eq 0 ]] && grep -q "DPT_CUDA=AUTO and cuDNN 7.6.[0-9]* (.*cudnn_version.h) is older than 8.0.*CPU-only build" <<<"$out" \
    && grep -q "^DPT_HAVE_CUDA:INTERNAL=0\|#define DPT_HAVE_CUDA 0" "$work/auto/CMakeCache.txt" "$work/auto/generated/runtime/config.h" 2>/dev/null; then
  ok "DPT_CUDA=AUTO with cuDNN 7.6: a CPU-only build, and the status line says why"
else
  fail "DPT_CUDA=AUTO with cuDNN 7.6: exit $rc"; echo "$out" | grep -e dptrain -e Error
fi
[[ $failures -eq 0 ]] || exit 1
echo "all checks passed"
