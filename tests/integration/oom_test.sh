#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Allocation failure under an address-space limit (`ulimit -v`): the job ends non-zero before the
# outer deadline with one message naming the rank, "out of memory" and the bytes; no rank is left
# running. One rank alone, and one rank of two (MPMD: only rank 1 is limited). The model's
# parameters alone (2.5 GB) exceed the limit (2.5 GiB less what the libraries map), so the failing
# allocation is ours whatever the build maps at start-up; DPT_CPU_GEMM=openblas makes OpenBLAS
# run backward-data where a step is reached.
# Usage: oom_test.sh BIN_DIR
set -uo pipefail
bin=${1:?usage: oom_test.sh BIN_DIR}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 DPT_CPU_GEMM=openblas
"$bin/dpt-data" import-fashion-mnist "$work/fm.h5" >/dev/null || exit 1
cat >"$work/big.toml" <<'TOML'
[model]
layers = [
  { type = "flatten" },
  { type = "linear", in = 784, out = 800000 },
  { type = "linear", in = 800000, out = 10 },
]
TOML
limit_kb=2621440  # 2.5 GiB
failures=0
# expect_oom NAME RANK COMMAND...: non-zero within 120 s, "out of memory on rank RANK" and a
# byte count in the output, and no train process of this test left behind.
expect_oom() {
  local name=$1 rank=$2
  shift 2
  local out rc
  out=$(timeout -k 5 120 "$@" 2>&1)
  rc=$?
  if [[ $rc -eq 0 ]]; then
    echo "FAIL $name: exit status 0"; failures=$((failures + 1))
  elif [[ $rc -eq 124 || $rc -eq 137 ]]; then
    echo "FAIL $name: still running after 120 s (a hang)"; echo "$out" | tail -5; failures=$((failures + 1))
  elif ! grep -q "out of memory on rank $rank: .*[0-9]\+ bytes" <<<"$out"; then
    echo "FAIL $name: exit $rc but no 'out of memory on rank $rank: ... bytes' in:"
    echo "$out" | tail -20; failures=$((failures + 1))
  else
    echo "ok   $name (exit $rc): $(grep -o "out of memory on rank $rank: .*" <<<"$out" | head -1 | cut -c1-160)"
  fi
  if pgrep -f "$work/fm.h5" >/dev/null; then
    echo "FAIL $name: a train process is still running"; failures=$((failures + 1))
    pkill -9 -f "$work/fm.h5"
  fi
}
args=(--data "$work/fm.h5" --config "$work/big.toml" --model custom --optimizer sgd --steps 2
      --batch-size 32 --threads 1 --eval=false --quiet)
expect_oom "one rank" 0 bash -c "ulimit -v $limit_kb; exec \"$bin/train\" \"\$@\"" _ "${args[@]}"
expect_oom "one rank of two" 1 \
  mpirun --oversubscribe --bind-to none -np 1 "$bin/train" "${args[@]}" : \
  -np 1 bash -c "ulimit -v $limit_kb; exec \"$bin/train\" \"\$@\"" _ "${args[@]}"
[[ $failures -eq 0 ]]
