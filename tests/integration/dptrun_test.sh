#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# launch/dptrun: starts the ranks (bound to cores when they fit, oversubscribed when they do not),
# passes the command through (train on 2 ranks: one job, world_size 2 in its summary), and rejects
# bad arguments with a message.
# Usage: dptrun_test.sh SOURCE_DIR BIN_DIR
set -uo pipefail
src=${1:?usage: dptrun_test.sh SOURCE_DIR BIN_DIR}
bin=${2:?usage: dptrun_test.sh SOURCE_DIR BIN_DIR}
source "$(dirname "$0")/summary.sh"
dptrun="$src/launch/dptrun"
failures=0
check() {  # check NAME CONDITION-STATUS DETAIL
  if [[ $2 -eq 0 ]]; then echo "ok   $1"; else echo "FAIL $1: $3"; failures=$((failures + 1)); fi
}
cores=$(nproc)
out=$(timeout 60 "$dptrun" -n "$cores" bash -c 'echo "rank=$OMPI_COMM_WORLD_RANK size=$OMPI_COMM_WORLD_SIZE"' 2>&1)
[[ $(grep -c "size=$cores" <<<"$out") -eq $cores ]]
check "one rank per core" $? "$out"
out=$(timeout 60 "$dptrun" -n $((cores * 2)) bash -c 'echo "rank=$OMPI_COMM_WORLD_RANK"' 2>&1)
[[ $(grep -c "rank=" <<<"$out") -eq $((cores * 2)) ]]
check "more ranks than cores (oversubscribed)" $? "$out"
# Binding: by default each rank runs on its own share of the cores (nproc follows the affinity);
# --no-bind leaves every rank on all of them.
out=$(timeout 60 "$dptrun" -n "$cores" bash -c 'echo "cpus=$(nproc)"' 2>&1)
[[ $(grep -c "^cpus=1$" <<<"$out") -eq $cores ]]
check "ranks bound to their own cores" $? "$out"
out=$(timeout 60 "$dptrun" -n "$cores" --no-bind bash -c 'echo "cpus=$(nproc)"' 2>&1)
[[ $(grep -c "^cpus=$cores$" <<<"$out") -eq $cores ]]
check "--no-bind leaves every rank on all cores" $? "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin/dpt-data" import-fashion-mnist "$work/fm.h5" >/dev/null
out=$(timeout 300 "$dptrun" -n 2 "$bin/train" --data "$work/fm.h5" --model mlp --steps 3 \
      --batch-size 64 --train-samples 640 --test-samples 100 --log-every 1 --metrics "$work/m.jsonl" 2>&1)
status=$?
[[ $status -eq 0 ]] && grep -q "running 3 steps on 2 rank(s) (mpi" <<<"$out" && grep -q "test accuracy" <<<"$out" &&
  expect_world_size "$work/m.jsonl" 2
check "train on 2 ranks through dptrun" $? "$out"
out=$("$dptrun" -n zero true 2>&1)
[[ $? -eq 2 ]] && grep -q "positive integer" <<<"$out"
check "bad rank count rejected" $? "$out"
out=$("$dptrun" true 2>&1)
[[ $? -eq 2 ]] && grep -q "need -n RANKS" <<<"$out"
check "missing -n rejected" $? "$out"
[[ $failures -eq 0 ]]
