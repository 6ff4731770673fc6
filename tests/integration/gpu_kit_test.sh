#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# scripts/gpu-kit.sh packs this build (--from-build, no second build) into a kit; unpacked into an
# empty folder:
#   - the archive is under 60 MiB;
#   - every library of every binary, test and packed library resolves (ldd, with the kit's library
#     path): glibc's from the host, CUDA's from a CUDA folder of the host on that path (the
#     toolkit here), every other one from the kit's lib/, none from this machine's other folders;
#     a library taken out of the kit is reported (the check can fail);
#   - no RUNPATH names a folder of the build machine;
#   - scripts/gpu-first-run.sh --cpu-only passes (library check, CPU training, the unit and mpi
#     suites).
# Usage: gpu_kit_test.sh SOURCE_DIR BUILD_DIR
set -uo pipefail
src=${1:?usage: gpu_kit_test.sh SOURCE_DIR BUILD_DIR}
build=${2:?usage: gpu_kit_test.sh SOURCE_DIR BUILD_DIR}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/gpu_kit_test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
ok() { echo "ok   $*"; }

# gzip: several times faster to make than xz and never smaller, so its size bounds xz's.
if ! DPT_KIT_COMPRESS=gzip "$src/scripts/gpu-kit.sh" --from-build "$build" "$tmp/out"; then
  fail "scripts/gpu-kit.sh --from-build $build exited non-zero"
  exit 1
fi
archives=("$tmp"/out/dptrain-gpu-kit.tar.*)
if ((${#archives[@]} != 1)) || [[ ! -f "${archives[0]}" ]]; then
  fail "expected one dptrain-gpu-kit.tar.* in OUT_DIR, found: $(ls "$tmp/out")"
  exit 1
fi
bytes=$(stat -c %s "${archives[0]}")
if ((bytes < 60 * 1048576)); then ok "archive is $((bytes / 1048576)) MiB (< 60)"; else
  fail "archive is $bytes bytes, over 60 MiB"; fi

mkdir "$tmp/unpacked"
tar -C "$tmp/unpacked" -xf "${archives[0]}" || { fail "cannot unpack ${archives[0]}"; exit 1; }
kit=$(cd "$tmp/unpacked/dptrain-gpu-kit" && pwd -P)
for f in bin/train bin/dpt-bench bin/dpt-data libexec/train tests.tsv MANIFEST.txt \
         data/fmnist-small.h5 bench/compare_pytorch.py bench/requires.py bench/machine.py \
         scripts/gpu-first-run.sh; do
  [[ -e "$kit/$f" ]] || fail "the kit lacks $f"
done
# The same library path the kit's programs use.
unset DPT_KIT DPT_KIT_LD_PATH
source "$kit/scripts/gpu-kit-env.sh"
echo "library path: $DPT_KIT_LD_PATH"

glibc_re='^(linux-vdso|ld-linux.*|libc|libm|libmvec|libpthread|libdl|librt|libresolv|libutil|libanl|libnsl|libnss_[a-z]+)\.so'
cuda_re='^lib(cuda|cudart|cublas|cublasLt|cudnn[a-z_]*|nccl|nvrtc[a-z-]*|nvJitLink|nvidia-ml)\.so'
# check_resolution: prints one line per library that does not resolve as the kit promises.
check_resolution() {
  local f soname arrow path rest dir
  for f in "$kit"/libexec/* "$kit"/tests/* "$kit"/lib/*; do
    while read -r soname arrow path rest; do
      [[ "$arrow" == "=>" ]] || continue
      [[ "$soname" =~ $glibc_re ]] && continue
      if [[ "$path" == not ]]; then
        echo "$(basename "$f"): $soname not found"
        continue
      fi
      dir=$(dirname "$(readlink -f "$path")")
      if [[ "$soname" =~ $cuda_re ]]; then
        [[ "$dir" != "$kit/lib" && ":$DPT_KIT_LD_PATH:" == *":$dir:"* ]] ||
          echo "$(basename "$f"): CUDA library $soname resolves to $path, not a CUDA folder"
      elif [[ "$dir" != "$kit/lib" ]]; then
        echo "$(basename "$f"): $soname resolves to $path, outside the kit"
      fi
    done < <(LD_LIBRARY_PATH="$DPT_KIT_LD_PATH" ldd "$f" 2>&1)
  done
}
problems=$(check_resolution)
if [[ -z "$problems" ]]; then
  ok "every library resolves from the kit, the CUDA folders ($(ls "$kit/lib" | wc -l) packed)"
else
  fail "libraries that do not resolve as they should:"
  sed 's/^/    /' <<<"$problems"
fi

# The check above can fail: without the kit's HDF5 the binaries find this machine's.
hdf5=$(cd "$kit/lib" && ls libhdf5*.so.* 2>/dev/null | head -1)
if [[ -z "$hdf5" ]]; then
  fail "no HDF5 library in the kit's lib/"
else
  mv "$kit/lib/$hdf5" "$tmp/$hdf5"
  without=$(check_resolution)
  if grep -q "$hdf5" <<<"$without"; then ok "a library taken out of the kit is reported"; else
    fail "removing lib/$hdf5 went unnoticed by the resolution check"; fi
  mv "$tmp/$hdf5" "$kit/lib/$hdf5"
fi

# RUNPATH of the executables: the kit's lib/ or nothing, never the build machine's folders.
for f in "$kit"/libexec/* "$kit"/tests/*; do
  runpath=$(readelf -d "$f" | sed -n 's/.*(RUNPATH).*\[\(.*\)\].*/\1/p')
  [[ -z "$runpath" || "$runpath" == '$ORIGIN/../lib' ]] ||
    fail "$(basename "$f") has RUNPATH $runpath"
done

# The kit's own first run without a GPU: library check, CPU training and the unit and one-rank mpi
# suites from the kit. (The integration suites are the same binaries' behaviour, already run from
# the build; running them again from the kit would double this test's time in CI.)
log="$tmp/log"
if "$kit/scripts/gpu-first-run.sh" --cpu-only --steps 10 "$log" >/dev/null 2>&1; then
  ok "gpu-first-run.sh --cpu-only passed"
else
  fail "gpu-first-run.sh --cpu-only failed:"
  sed 's/^/    | /' "$log/first-run.log"
fi
for stage in libraries train-cnn-cpu train-mlp-cpu cpu-tests; do
  grep -Eq "^  $stage +PASS" "$log/first-run.log" || fail "first-run summary: $stage did not pass"
done
grep -Eq "^  gpu-tests +SKIP" "$log/first-run.log" || fail "first-run summary: gpu-tests not skipped"

((failures == 0)) && echo "gpu_kit_test: all checks passed"
((failures == 0))
