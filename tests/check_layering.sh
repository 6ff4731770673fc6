#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Fails when a file includes a layer above its own, one backend of kernels/ includes the other
# (cpu/ and cuda/ share only the backend-neutral headers of kernels/), or a backend header appears
# outside its folder: CUDA, cuDNN, cuBLAS only under */cuda/, NCCL only in comm/nccl/, MPI only in
# comm/mpi/, HDF5 only in runtime/io/.
set -u
root=${1:-.}
cd "$root" || exit 2
status=0
report() { echo "layering: $1"; status=1; }
while IFS= read -r f; do
  case "$f" in
    src/runtime/*) bad='"(kernels|comm|nn)/' ;;
    src/kernels/cpu/*) bad='"(comm|nn|kernels/cuda)/' ;;
    src/kernels/cuda/*) bad='"(comm|nn|kernels/cpu)/' ;;
    src/kernels/*) bad='"(comm|nn)/' ;;
    src/comm/*) bad='"(kernels|nn)/' ;;
    *) continue ;;
  esac
  if hits=$(grep -nE "^[[:space:]]*#[[:space:]]*include[[:space:]]*$bad" "$f"); then
    report "$f includes a higher or sibling layer or backend: $hits"
  fi
done < <(find src -name '*.h' -o -name '*.cpp' -o -name '*.cu' -o -name '*.cuh' | sort)
while IFS= read -r f; do
  while IFS= read -r hit; do
    [[ -z "$hit" ]] && continue
    case "$f:$hit" in
      */cuda/*:*\<cuda*|*/cuda/*:*\<cudnn*|*/cuda/*:*\<cublas*|*/cuda/*:*\<curand*) ;;
      src/comm/nccl/*:*\<nccl*|src/comm/nccl/*:*\<cuda*) ;;
      src/comm/mpi/*:*mpi*) ;;
      src/runtime/io/*:*hdf5*|src/runtime/io/*:*H5*) ;;
      *) report "$f: backend header outside its folder: $hit" ;;
    esac
  done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*<(cuda|cudnn|cublas|curand|nccl|mpi|hdf5|H5)[^>]*>' "$f")
done < <(find src apps -name '*.h' -o -name '*.cpp' -o -name '*.cu' -o -name '*.cuh' | sort)
[[ $status -eq 0 ]] && echo "layering: ok"
exit $status
