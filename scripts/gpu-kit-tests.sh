#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs the test executables of an unpacked GPU kit (scripts/gpu-kit.sh) from its tests.tsv, with
# the kit's library path, without cmake or ctest: CTest's files hold the build machine's absolute
# paths, tests.tsv holds kit-relative ones. Selection works like ctest's.
#
# Usage: scripts/gpu-kit-tests.sh [-L LABEL]... [-LE LABEL]... [-E REGEX] [--verbose]
#                                 [--skip-is-failure] [--timeout-cap S]
#   -L LABEL          only entries with this label (several -L: any of them)
#   -LE LABEL         leave out entries with this label
#   -E REGEX          leave out entries whose name matches
#   --verbose         print every test's output (default: only a failing test's)
#   --skip-is-failure a suite that exits with its skip code fails (a GPU machine must not skip)
#   --timeout-cap S   no entry runs longer than S seconds, whatever tests.tsv allows
# Exit status: 0 when at least one entry ran and none failed, 1 otherwise.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/gpu-kit-env.sh"

usage() { sed -n '6,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
include=() exclude=() exclude_re="" verbose=0 skip_fails=0 cap=0
while (($#)); do
  case "$1" in
    -L) include+=("${2:?-L needs a label}"); shift 2 ;;
    -LE) exclude+=("${2:?-LE needs a label}"); shift 2 ;;
    -E) exclude_re=${2:?-E needs a regex}; shift 2 ;;
    --verbose) verbose=1; shift ;;
    --skip-is-failure) skip_fails=1; shift ;;
    --timeout-cap) cap=${2:?--timeout-cap needs seconds}; shift 2 ;;
    -h|--help) usage ;;
    *) echo "gpu-kit-tests: unknown argument '$1'" >&2; usage ;;
  esac
done

manifest="$DPT_KIT/tests.tsv"
if [[ ! -f "$manifest" ]]; then
  echo "gpu-kit-tests: $manifest is missing: run this from an unpacked kit (scripts/gpu-kit.sh)" >&2
  exit 1
fi

# has_label "a,b,c" x: whether x is one of the comma-separated labels.
has_label() { [[ ",$1," == *",$2,"* ]]; }

passed=0 failed=0 skipped=0 failures=()
work=$(mktemp -d "${TMPDIR:-/tmp}/dpt-kit-tests.XXXXXX")
trap 'rm -rf "$work"' EXIT
while IFS=$'\t' read -r -a f; do
  [[ ${#f[@]} -ge 6 && "${f[0]}" != \#* ]] || continue
  name=${f[0]} labels=${f[1]} limit=${f[2]} skip_rc=${f[3]} extra_env=${f[4]}
  cmd=("$DPT_KIT/${f[5]}" "${f[@]:6}")
  if ((${#include[@]})); then
    wanted=0
    for l in "${include[@]}"; do has_label "$labels" "$l" && wanted=1; done
    ((wanted)) || continue
  fi
  dropped=0
  for l in "${exclude[@]}"; do has_label "$labels" "$l" && dropped=1; done
  ((dropped)) && continue
  [[ -n "$exclude_re" && "$name" =~ $exclude_re ]] && continue
  ((cap > 0 && limit > cap)) && limit=$cap
  envs=(LD_LIBRARY_PATH="$DPT_KIT_LD_PATH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        DPT_BIN_DIR="$DPT_KIT/bin" DPT_SOURCE_DIR="$DPT_KIT")
  if [[ "$extra_env" != "-" ]]; then
    IFS=';' read -r -a more <<<"$extra_env"
    envs+=("${more[@]}")
  fi
  start=$SECONDS
  # Each entry in a working folder of its own, as CTest runs it in the build folder.
  mkdir -p "$work/$name"
  (cd "$work/$name" && timeout -k 10 "$limit" env "${envs[@]}" "${cmd[@]}") >"$work/$name.out" 2>&1
  rc=$?
  took=$((SECONDS - start))
  if ((rc == 0)); then
    verdict="Passed"; ((passed++))
  elif [[ "$skip_rc" != "-" && $rc -eq $skip_rc ]] && ((!skip_fails)); then
    verdict="Skipped"; ((skipped++))
  else
    case $rc in
      124|137) verdict="Failed (timed out after ${limit} s)" ;;
      "$skip_rc") verdict="Failed (skipped, exit $rc, where no skip is allowed)" ;;
      *) verdict="Failed (exit $rc)" ;;
    esac
    ((failed++)); failures+=("$name")
  fi
  printf '%-32s %s  %d s  [%s]\n' "$name" "$verdict" "$took" "$labels"
  if ((verbose)) || [[ "$verdict" != Passed ]]; then
    sed 's/^/    | /' "$work/$name.out"
  fi
done <"$manifest"

total=$((passed + failed + skipped))
echo "gpu-kit-tests: $passed passed, $failed failed, $skipped skipped of $total"
((failed)) && echo "gpu-kit-tests: failed: ${failures[*]}"
if ((total == 0)); then
  echo "gpu-kit-tests: no test matched the selection"
  exit 1
fi
((failed == 0))
