#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# --device through the shipped binary. Without a usable GPU, `train --device cuda` (and cuda:0)
# exits non-zero with exactly one error line that says what CUDA reported and "use --device cpu",
# never a crash; under mpirun -np 2 the job ends non-zero within 60 s, each rank's line naming its
# rank. `--device auto` trains on the CPU there and says so; `--device bogus` and `cuda:x` are
# refused with the accepted values; --allow-shared-gpu no longer exists (two ranks on one GPU cannot
# work under NCCL: sharing is refused by GPU identity, tests/runtime/device_test.cpp), so it is
# refused as an unknown option. The no-GPU cases hide the GPUs
# with CUDA_VISIBLE_DEVICES=-1, so they also run on GPU machines (skipped, with a message, if that
# does not hide them); there, `--device cuda:99` is refused as well.
# Usage: device_errors_test.sh BIN_DIR [HAVE_MPI]   (HAVE_MPI 0: a DPT_MPI=OFF build, no mpirun case)
set -uo pipefail
bin=${1:?usage: device_errors_test.sh BIN_DIR [HAVE_MPI]}
have_mpi=${2:-1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
"$bin/dpt-data" import-fashion-mnist "$work/fm.h5" >/dev/null || exit 1
failures=0
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
ok() { echo "ok   $*"; }
common=(--data "$work/fm.h5" --model mlp --steps 2 --batch-size 32 --train-samples 256
        --test-samples 64 --threads 1 --eval=false --quiet)
mpi=(mpirun --oversubscribe --bind-to none -np 2)
# A failure must be an error message, not a crash report.
crashed() { grep -q -e 'Segmentation' -e 'core dumped' -e 'terminate called' -e 'Signal:' \
  -e 'corrupted' -e 'HDF5-DIAG' <<<"$1"; }
# The device a run reports in its start-up line ("..., cpu with 1 thread(s) per rank").
device_of() { sed -n 's/.*node(s)), \([a-z0-9:]*\) with [0-9]* thread.*/\1/p' <<<"$1" | head -1; }

# expect_refused NAME PATTERN COMMAND...: exit status in 1..127 (not a signal, not the 60 s
# timeout), exactly one line with PATTERN, no crash report.
expect_refused() {
  local name=$1 pattern=$2
  shift 2
  local out rc lines
  out=$(timeout 60 "$@" 2>&1)
  rc=$?
  lines=$(grep -c -- "$pattern" <<<"$out")
  if [[ $rc -eq 0 ]]; then
    fail "$name: exit status 0"; echo "$out" | tail -5
  elif [[ $rc -eq 124 ]]; then
    fail "$name: still running after 60 s"
  elif [[ $rc -ge 128 ]]; then
    fail "$name: killed by a signal (exit $rc)"; echo "$out" | tail -5
  elif crashed "$out"; then
    fail "$name: crash report in the output"; echo "$out" | tail -10
  elif [[ $lines -ne 1 ]]; then
    fail "$name: $lines lines with '$pattern' (expected 1):"; echo "$out" | tail -10
  else
    ok "$name (exit $rc): $(grep -- "$pattern" <<<"$out")"
  fi
  last_out=$out
}

# ---- --device auto and cpu train here
out=$(timeout 120 "$bin/train" --device auto "${common[@]}" 2>&1)
rc=$?
visible=$(device_of "$out")
if [[ $rc -eq 0 && -n "$visible" ]]; then
  ok "--device auto trains on $visible"
else
  fail "--device auto: exit $rc, device '$visible'"; echo "$out" | tail -10
fi
out=$(timeout 120 "$bin/train" --device cpu "${common[@]}" 2>&1)
rc=$?
if [[ $rc -eq 0 && $(device_of "$out") == cpu ]]; then
  ok "--device cpu trains on cpu"
else
  fail "--device cpu: exit $rc, device '$(device_of "$out")'"; echo "$out" | tail -10
fi
expect_refused "--allow-shared-gpu (removed)" "not expected: --allow-shared-gpu" \
  "$bin/train" --device cpu --allow-shared-gpu "${common[@]}"

# ---- malformed specs, on any machine
expect_refused "--device bogus" "expected auto, cpu, cuda or cuda:N, got 'bogus'" \
  "$bin/train" --device bogus "${common[@]}"
expect_refused "--device cuda:x" "'cuda:x'" "$bin/train" --device cuda:x "${common[@]}"

# ---- no usable GPU: hide any GPU from CUDA
export CUDA_VISIBLE_DEVICES=-1
out=$(timeout 120 "$bin/train" --device auto "${common[@]}" 2>&1)
rc=$?
if [[ $rc -ne 0 || $(device_of "$out") != cpu ]]; then
  fail "--device auto without a visible GPU: exit $rc, device '$(device_of "$out")' (expected cpu)"
  echo "$out" | tail -10
  echo "skip the no-GPU cases: CUDA_VISIBLE_DEVICES=-1 did not hide the GPU"
else
  ok "--device auto without a visible GPU trains on cpu"
  for spec in cuda cuda:0; do
    expect_refused "--device $spec without a GPU" "use --device cpu" \
      "$bin/train" --device "$spec" "${common[@]}"
    line=$(grep -- "use --device cpu" <<<"$last_out")
    # What CUDA (or the build) said, in parentheses, before the advice.
    if [[ -n "$line" ]] && ! grep -q -E "'$spec'.*\(.+\); use --device cpu" <<<"$line"; then
      fail "--device $spec without a GPU: the line does not name the spec and CUDA's reason: $line"
    fi
    # A single process is rank 0 of a world of one: its error line says so too.
    if [[ -n "$line" ]] && ! grep -q -F "[rank 0]" <<<"$line"; then
      fail "--device $spec without a GPU: the error line does not name the rank: $line"
    fi
  done

  # Under mpirun every rank fails the same way before any collective; the first abort ends the
  # job. Each line that made it out names its rank.
  if [[ $have_mpi != 1 ]] || ! command -v mpirun >/dev/null; then
    echo "skip mpirun -np 2 --device cuda: no MPI in this build or no mpirun"
  else
    out=$(timeout 60 "${mpi[@]}" "$bin/train" --device cuda "${common[@]}" 2>&1)
    rc=$?
    lines=$(grep -c -- "use --device cpu" <<<"$out")
    unnamed=$(grep -- "use --device cpu" <<<"$out" | grep -c -v -E '\[rank [01]\]')
    per_rank_ok=1
    for r in 0 1; do
      [[ $(grep -- "use --device cpu" <<<"$out" | grep -c "\[rank $r\]") -le 1 ]] || per_rank_ok=0
    done
    if [[ $rc -eq 0 ]]; then
      fail "mpirun -np 2 --device cuda without a GPU: exit status 0"
    elif [[ $rc -eq 124 ]]; then
      fail "mpirun -np 2 --device cuda without a GPU: still running after 60 s (a hang)"
    elif crashed "$out"; then
      fail "mpirun -np 2 --device cuda without a GPU: crash report"; echo "$out" | tail -15
    elif [[ $lines -lt 1 || $unnamed -ne 0 || $per_rank_ok -ne 1 ]]; then
      fail "mpirun -np 2 --device cuda without a GPU: $lines error line(s), $unnamed without a rank:"
      echo "$out" | tail -15
    else
      ok "mpirun -np 2 --device cuda without a GPU (exit $rc, $lines rank line(s))"
    fi
  fi
fi
unset CUDA_VISIBLE_DEVICES

# ---- with a GPU: an index past the last visible GPU is refused
if [[ "$visible" == cuda:* ]]; then
  expect_refused "--device cuda:99" "CUDA device(s) visible" "$bin/train" --device cuda:99 "${common[@]}"
else
  echo "skip --device cuda:99: no GPU here"
fi
[[ $failures -eq 0 ]]
