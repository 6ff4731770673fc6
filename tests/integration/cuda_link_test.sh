#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A CUDA build's train binary links the CUDA libraries dynamically: its NEEDED entries name
# libcudart, libcublas or libcublasLt, libcudnn and libnccl. Registered only when DPT_HAVE_CUDA.
# Usage: cuda_link_test.sh BIN_DIR
set -uo pipefail
bin=${1:?usage: cuda_link_test.sh BIN_DIR}
exe="$bin/train"
if [[ ! -x "$exe" ]]; then
  echo "FAIL $exe is missing or not executable"
  exit 1
fi
if command -v readelf >/dev/null; then
  needed=$(readelf -d "$exe" | sed -n 's/.*(NEEDED).*\[\(.*\)\].*/\1/p')
elif command -v objdump >/dev/null; then
  needed=$(objdump -p "$exe" | awk '$1 == "NEEDED" {print $2}')
else
  echo "FAIL neither readelf nor objdump is installed (binutils)"
  exit 1
fi
echo "NEEDED entries of $exe:"
sed 's/^/  /' <<<"$needed"
missing=()
# name|pattern (extended regex over the NEEDED sonames)
for check in "libcudart|^libcudart\.so" "libcublas or libcublasLt|^libcublas(Lt)?\.so" \
             "libcudnn|^libcudnn(_[a-z_]+)?\.so" "libnccl|^libnccl\.so"; do
  name=${check%%|*}
  pattern=${check#*|}
  if grep -q -E "$pattern" <<<"$needed"; then
    echo "ok   $name: $(grep -E "$pattern" <<<"$needed" | tr '\n' ' ')"
  else
    echo "FAIL $name: no NEEDED entry"
    missing+=("$name")
  fi
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "FAIL $exe does not link: ${missing[*]}"
  exit 1
fi
