#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# dpt-bench exact-precision on `cnn` (global batch 32, 8 shards of 4): one row per sum (float in
# shard order, float pairwise tree, exact), and the exact sum is what exact mode promises against
# the float64 sum of the shard gradients: normwise error below 1e-6 and no larger than the float
# sum's, 99% of the elements within half an ulp (relative error <= 2^-24) and correctly rounded.
# A sum that dropped or repeated a shard, used too few fraction bits or the wrong exponent fails.
# A shard size that does not divide the batch is refused with a message.
# Usage: exact_precision_test.sh BIN_DIR
set -uo pipefail
bin=${1:?usage: exact_precision_test.sh BIN_DIR}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin/dpt-data" import-fashion-mnist "$work/fm.h5" >/dev/null || exit 1
out=$(timeout 300 "$bin/dpt-bench" exact-precision --data "$work/fm.h5" --model cnn --batch 32 \
  --shard-size 4 2>&1)
rc=$?
echo "$out"
[[ $rc -eq 0 ]] || { echo "FAIL: exit $rc"; exit 1; }
grep -q '^# dpt-bench exact-precision: cnn, initial parameters, .* batch of 32 at step 0' <<<"$out" ||
  { echo "FAIL: no header"; exit 1; }
# | model | step | shards x size | sum | normwise (worst) | median | p99 | correctly rounded |
row() { grep -F "| cnn | 0 | 8 x 4 | $1 |" <<<"$out"; }
for sum in "float, shard order" "float, pairwise tree" "exact (fixed point)"; do
  [[ $(row "$sum" | wc -l) -eq 1 ]] || { echo "FAIL: not one row for '$sum'"; exit 1; }
done
[[ $(grep -c '^| cnn ' <<<"$out") -eq 3 ]] || { echo "FAIL: expected 3 rows"; exit 1; }
field() { awk -F'|' -v c="$2" '{ v = $c; sub(/\(.*/, "", v); sub(/%/, "", v); gsub(/ /, "", v); print v }' <<<"$(row "$1")"; }
exact_norm=$(field "exact (fixed point)" 6)
float_norm=$(field "float, shard order" 6)
exact_p99=$(field "exact (fixed point)" 8)
exact_rounded=$(field "exact (fixed point)" 9)
echo "exact: normwise $exact_norm, p99 $exact_p99, correctly rounded $exact_rounded%; float in order: normwise $float_norm"
awk -v e="$exact_norm" -v f="$float_norm" -v p="$exact_p99" -v r="$exact_rounded" 'BEGIN {
  bad = 0
  if (!(e < 1e-6)) { print "FAIL: exact normwise error " e " >= 1e-6"; bad = 1 }
  if (!(e <= f)) { print "FAIL: exact normwise error " e " above that of the float sum, " f; bad = 1 }
  if (!(p <= 5.9605e-8)) { print "FAIL: exact elementwise p99 " p " above 2^-24"; bad = 1 }
  if (!(r >= 99)) { print "FAIL: only " r "% of the exact sums correctly rounded"; bad = 1 }
  exit bad }' || exit 1
out=$("$bin/dpt-bench" exact-precision --data "$work/fm.h5" --batch 32 --shard-size 5 2>&1)
[[ $? -ne 0 ]] && grep -q -- '--shard-size 5 must divide --batch 32' <<<"$out" ||
  { echo "FAIL: bad shard size accepted: $out"; exit 1; }
echo "dpt-bench exact-precision checks passed"
