#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# dpt-bench allreduce on 3 ranks (one job: its header says 3 ranks): one row per size from
# --min-bytes to --max-bytes, each with a positive iteration count and times, algbw = bytes / time,
# busbw = algbw x 2(n-1)/n = 4/3 algbw (3 ranks: at 2 the two are equal by definition, and a wrong
# factor would pass), and the comm/native column = the ratio of the two busbw; bad options fail
# with a message.
# Usage: dpt_bench_test.sh BIN_DIR
set -uo pipefail
bin=${1:?usage: dpt_bench_test.sh BIN_DIR}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ranks=3
out=$(timeout 120 mpirun --oversubscribe --bind-to none -np $ranks "$bin/dpt-bench" allreduce \
  --min-bytes 4096 --max-bytes 1048576 --seconds 0.02 2>&1)
rc=$?
echo "$out"
[[ $rc -eq 0 ]] || { echo "FAIL: exit $rc"; exit 1; }
grep -q "dpt-bench allreduce: $ranks rank(s)" <<<"$out" || { echo "FAIL: no header for $ranks ranks"; exit 1; }
rows=$(grep -v '^#' <<<"$out" | awk 'NF >= 10')
sizes=$(awk '{print $1}' <<<"$rows" | tr '\n' ' ')
[[ "$sizes" == "4096 16384 65536 262144 1048576 " ]] || { echo "FAIL: sizes '$sizes'"; exit 1; }
# columns: bytes floats iters | us algbw busbw | us algbw busbw | comm/native busbw %
# Each printed value is rounded (us to 0.1, GB/s to 0.001, % to 0.1): every comparison allows the
# rounding of the values it reads, and no more.
bad=$(awk -v n=$ranks '
  function abs(v) { return v < 0 ? -v : v }
  # algbw = bytes / time: bytes / (us * 1e3) GB/s, the time known to +-0.05 us
  function off_alg(bw, bytes, us,   e) { e = bytes / (us * 1e3); return abs(bw - e) > 0.0006 + e * (0.051 / us + 0.001) }
  # busbw = algbw x 2(n-1)/n, both printed to 0.001
  function off_bus(bus, alg,   f) { f = 2 * (n - 1) / n; return abs(bus - alg * f) > 0.0005 * (1 + f) + 1e-9 }
  # ratio = 100 busbw(comm) / busbw(native), the busbws known to +-0.0005 and the ratio to +-0.05
  function off_ratio(r, b1, b2,   e) { e = 100 * b1 / b2; return abs(r - e) > 0.051 + e * (0.0005 / b1 + 0.0005 / b2) }
  { ratio = $13; sub(/%$/, "", ratio)
    # (a busbw that rounds to 0.000 on a very slow machine leaves the ratio unchecked)
    if (!($2 == $1 / 4 && $3 >= 1 && $5 > 0 && $9 > 0 &&
          !off_alg($6, $1, $5) && !off_alg($10, $1, $9) && !off_bus($7, $6) && !off_bus($11, $10) &&
          ($7 == 0 || $11 == 0 || !off_ratio(ratio, $7, $11)))) print }' <<<"$rows")
[[ -z "$bad" ]] || { echo "FAIL: inconsistent rows:"; echo "$bad"; exit 1; }
out=$("$bin/dpt-bench" allreduce --min-bytes 0 2>&1)
[[ $? -ne 0 ]] && grep -q 'need 4 <= --min-bytes' <<<"$out" || { echo "FAIL: bad option accepted: $out"; exit 1; }
echo "dpt-bench allreduce checks passed"
