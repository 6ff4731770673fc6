#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Multi-rank failures end the whole job, non-zero, with a message that names the problem:
# a batch that does not split over the ranks, a dataset smaller than one global batch, and a
# failure on one rank only (its dataset path is wrong) while the other waits in a collective.
# Also: --help under mpirun is printed once.
# Usage: mpi_errors_test.sh BIN_DIR
set -uo pipefail
bin=${1:?usage: mpi_errors_test.sh BIN_DIR}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
"$bin/dpt-data" import-fashion-mnist "$work/fm.h5" >/dev/null || exit 1
failures=0
# expect_failure NAME PATTERN COMMAND...: the command must exit non-zero within 120 s and print
# PATTERN.
expect_failure() {
  local name=$1 pattern=$2
  shift 2
  local out rc
  out=$(timeout 120 "$@" 2>&1)
  rc=$?
  if [[ $rc -eq 0 ]]; then
    echo "FAIL $name: exit status 0"; failures=$((failures + 1))
  elif [[ $rc -eq 124 ]]; then
    echo "FAIL $name: still running after 120 s (a hang)"; failures=$((failures + 1))
  elif ! grep -q -- "$pattern" <<<"$out"; then
    echo "FAIL $name: exit $rc but no '$pattern' in:"; echo "$out" | tail -20; failures=$((failures + 1))
  else
    echo "ok   $name (exit $rc)"
  fi
}
mpi=(mpirun --oversubscribe --bind-to none)
common=(--model mlp --steps 2 --threads 1 --eval=false --quiet)
expect_failure "batch not divisible by ranks" "must be divisible by the number of ranks (4)" \
  "${mpi[@]}" -np 4 "$bin/train" --data "$work/fm.h5" --batch-size 126 "${common[@]}"
expect_failure "batch not divisible by ranks x micro-batch" "ranks x 'micro-batch' (2 x 32)" \
  "${mpi[@]}" -np 2 "$bin/train" --data "$work/fm.h5" --batch-size 96 --micro-batch 32 "${common[@]}"
expect_failure "dataset smaller than one global batch" "fewer than one global batch" \
  "${mpi[@]}" -np 2 "$bin/train" --data "$work/fm.h5" --train-samples 100 --batch-size 128 "${common[@]}"
# MPMD: rank 0 gets the good file, rank 1 a missing one. Rank 0 reaches the start-up all-gather
# and waits there; rank 1's error must still end both. The error must come from rank 1: two
# separate one-rank jobs would fail too, as rank 0.
expect_failure "one rank fails" "\[rank 1\] train: cannot open /nonexistent/fm.h5" \
  "${mpi[@]}" -np 1 "$bin/train" --data "$work/fm.h5" "${common[@]}" : \
  -np 1 "$bin/train" --data /nonexistent/fm.h5 "${common[@]}"
expect_failure "ranks disagree" "ranks disagree on their set-up" \
  "${mpi[@]}" -np 1 "$bin/train" --data "$work/fm.h5" --lr 0.1 "${common[@]}" : \
  -np 1 "$bin/train" --data "$work/fm.h5" --lr 0.2 "${common[@]}"
# --help under mpirun: printed once, by rank 0, and the job exits 0.
help=$(timeout 60 "${mpi[@]}" -np 2 "$bin/train" --help 2>&1)
usage_lines=$(grep -c '^Usage: train' <<<"$help")
if [[ $? -gt 1 || "$usage_lines" -ne 1 ]]; then
  echo "FAIL --help under mpirun: $usage_lines usage lines"; failures=$((failures + 1))
else
  echo "ok   --help printed once under mpirun"
fi
[[ $failures -eq 0 ]]
