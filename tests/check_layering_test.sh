#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# check_layering.sh itself: on small trees it passes the allowed includes and fails each kind of
# violation it is meant to catch (so a broken pattern cannot leave include_layering passing).
set -u
script=$(cd "$(dirname "$0")" && pwd)/check_layering.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

# make_tree DIR FILE=LINE...: a tree with one include line per file.
make_tree() {
  local dir=$1
  shift
  for spec in "$@"; do
    mkdir -p "$dir/$(dirname "${spec%%=*}")"
    printf '%s\n' "${spec#*=}" >"$dir/${spec%%=*}"
  done
  mkdir -p "$dir/src" "$dir/apps"
}

expect() {  # expect ok|fail NAME FILE=LINE...
  local want=$1 name=$2
  shift 2
  local dir=$work/$name
  make_tree "$dir" "$@"
  local out status
  out=$("$script" "$dir" 2>&1)
  status=$?
  if [[ $want == ok && $status -ne 0 ]] || [[ $want == fail && $status -eq 0 ]]; then
    echo "FAIL: $name: expected $want, got status $status: $out"
    failures=$((failures + 1))
  else
    echo "ok: $name"
  fi
}

expect ok allowed \
  'src/kernels/cuda/conv.cpp=#include "kernels/shapes.h"' \
  'src/kernels/cpu/conv.cpp=#include "kernels/shapes.h"' \
  'src/kernels/dispatch.cpp=#include "kernels/cpu/kernels_cpu.h"' \
  'src/kernels/cuda/linear.cpp=#include <cublasLt.h>' \
  'src/runtime/io/h5.h=#include <hdf5.h>'
expect fail cuda_includes_cpu 'src/kernels/cuda/kernels_cuda.h=#include "kernels/cpu/kernels_cpu.h"'
expect fail cpu_includes_cuda 'src/kernels/cpu/pool.cpp=#include "kernels/cuda/kernels_cuda.h"'
expect fail kernels_includes_comm 'src/kernels/ops.h=#include "comm/communicator.h"'
expect fail runtime_includes_nn 'src/runtime/tensor.h=#include "nn/module.h"'
expect fail hdf5_outside_io 'src/runtime/tensor.cpp=#include <hdf5.h>'
expect fail mpi_outside_mpi 'src/comm/communicator.cpp=#include <mpi.h>'

[[ $failures -eq 0 ]]
