#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# dpt-bench allreduce on 2 ranks: one row per size from --min-bytes to --max-bytes, each with
# positive times and bandwidths, and busbw = algbw x 2(n-1)/n (= algbw for n = 2); bad options
# fail with a message.
# Usage: dpt_bench_test.sh BIN_DIR
set -uo pipefail
bin=${1:?usage: dpt_bench_test.sh BIN_DIR}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
out=$(timeout 120 mpirun --oversubscribe --bind-to none -np 2 "$bin/dpt-bench" allreduce \
  --min-bytes 4096 --max-bytes 1048576 --seconds 0.02 2>&1)
rc=$?
echo "$out"
[[ $rc -eq 0 ]] || { echo "FAIL: exit $rc"; exit 1; }
rows=$(grep -v '^#' <<<"$out" | awk 'NF >= 10')
sizes=$(awk '{print $1}' <<<"$rows" | tr '\n' ' ')
[[ "$sizes" == "4096 16384 65536 262144 1048576 " ]] || { echo "FAIL: sizes '$sizes'"; exit 1; }
# columns: bytes floats iters | us algbw busbw | us algbw busbw | ratio
# algbw = bytes / time (GB/s from bytes and microseconds), within the rounding of the printed
# values (3 decimals of GB/s, 1 decimal of us); times > 0.
bad=$(awk 'function off(bw, bytes, us) { e = bytes / (us * 1e3); d = bw - e; if (d < 0) d = -d; return d > 0.0006 + e * (0.051 / us + 0.001) }
  { if (!($2 == $1 / 4 && $5 > 0 && $9 > 0 && $7 == $6 && $11 == $10 && !off($6, $1, $5) && !off($10, $1, $9))) print }' <<<"$rows")
[[ -z "$bad" ]] || { echo "FAIL: inconsistent rows:"; echo "$bad"; exit 1; }
grep -q 'dpt-bench allreduce: 2 rank(s)' <<<"$out" || { echo "FAIL: no header"; exit 1; }
out=$("$bin/dpt-bench" allreduce --min-bytes 0 2>&1)
[[ $? -ne 0 ]] && grep -q 'need 4 <= --min-bytes' <<<"$out" || { echo "FAIL: bad option accepted: $out"; exit 1; }
echo "dpt-bench allreduce checks passed"
