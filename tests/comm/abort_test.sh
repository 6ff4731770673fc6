#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# abort_test.sh MPIEXEC-COMMAND...: runs abort_program under mpiexec (the arguments) and checks that
# the job ends non-zero, within seconds, with rank 1's message (which names the world size: one job
# of 2 ranks, not two jobs of one): abort_all() ended the rank blocked in a barrier instead of
# leaving it to hang.
set -u
start=$(date +%s%N)
output=$(timeout 60 "$@" 2>&1)
rc=$?
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "$output"
echo "abort_test: exit status $rc after ${elapsed_ms} ms"
fail() { echo "abort_test: FAILED: $1"; exit 1; }
[[ $rc -eq 124 ]] && fail "the job hung: timeout killed it after 60 s"
[[ $rc -eq 0 ]] && fail "the job exited 0 although rank 1 aborted"
grep -q "rank 1 of 2 fails on purpose" <<<"$output" || fail "rank 1's error message (rank 1 of 2) is missing"
grep -q "passed a barrier" <<<"$output" && fail "a rank passed a barrier rank 1 never entered"
(( elapsed_ms < 15000 )) || fail "the job took ${elapsed_ms} ms to end (limit 15000)"
echo "abort_test: ok"
