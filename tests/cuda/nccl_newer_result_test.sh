#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# comm/nccl/nccl_check.cpp compiles with -Wall -Werror against an nccl.h whose ncclResult_t has a
# code this source does not know (NCCL 2.30 adds ncclTimeout): the installed nccl.h with one more
# enumerator before ncclNumResults. A switch without a default fails here with -Werror=switch.
# Usage: nccl_newer_result_test.sh CXX NCCL_INCLUDE_DIR SOURCE_DIR GENERATED_DIR CUDA_INCLUDE_DIR
set -euo pipefail
cxx=$1 nccl_include=$2 src=$3 generated=$4 cuda_include=$5
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed -E 's/^([[:space:]]*)ncclNumResults([[:space:]]*)=([[:space:]]*)([0-9]+)/\1ncclFutureResult = \4,\n\1ncclNumResults = \4 + 1/' \
  "$nccl_include/nccl.h" >"$work/nccl.h"
if ! grep -q ncclFutureResult "$work/nccl.h"; then
  echo "FAIL: could not add an enumerator to ncclResult_t in $nccl_include/nccl.h"
  exit 1
fi
if "$cxx" -std=c++20 -Wall -Wextra -Werror -fsyntax-only -I"$work" -I"$src/src" -I"$generated" \
    -I"$cuda_include" "$src/src/comm/nccl/nccl_check.cpp" 2>"$work/err"; then
  echo "ok   nccl_check.cpp compiles with an ncclResult_t code it does not name"
else
  echo "FAIL: nccl_check.cpp does not compile against an NCCL with a newer result code:"
  cat "$work/err"
  exit 1
fi
