#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# On a machine without a GPU: `ctest -L gpu --no-tests=error` reports the GPU suites as skipped
# (exit 0, every one "Skipped"), `DPT_REQUIRE_GPU=1 ctest -L gpu` fails every one of them, and a
# selection that matches no test fails under --no-tests=error (so a build that lacks the CUDA
# backend, and with it every gpu test, cannot pass `ctest -L gpu --no-tests=error`). Skipped (77)
# on a machine with a GPU, where the suites run for real.
# Usage: require_gpu_test.sh BUILD_DIR
set -uo pipefail
build=${1:?usage: require_gpu_test.sh BUILD_DIR}
failures=0
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
ok() { echo "ok   $*"; }

unset DPT_REQUIRE_GPU
probe=$("$build/tests/cuda_ops_test" --gtest_list_tests 2>&1)
if [[ $? -ne 77 ]]; then
  echo "SKIPPED: cuda_ops_test does not skip here (a GPU machine?): $(head -1 <<<"$probe")"
  exit 77
fi

count=$(ctest --test-dir "$build" -N -L gpu | sed -n 's/^Total Tests: //p')
if [[ -z $count || $count -lt 1 ]]; then
  fail "ctest -N -L gpu lists no tests ('$count')"
fi

out=$(ctest --test-dir "$build" -L gpu --no-tests=error 2>&1)
rc=$?
skipped=$(grep -c '\*\*\*Skipped' <<<"$out")
if [[ $rc -eq 0 && $skipped -eq $count ]]; then
  ok "ctest -L gpu: all $count gpu tests skipped, exit 0"
else
  fail "ctest -L gpu: exit $rc, $skipped of $count skipped"; echo "$out" | tail -15
fi

out=$(DPT_REQUIRE_GPU=1 ctest --test-dir "$build" -L gpu --no-tests=error --output-on-failure 2>&1)
rc=$?
failed=$(grep -cE '\*\*\*Failed|\(Failed\)' <<<"$out")
if [[ $rc -ne 0 ]] && grep -q "DPT_REQUIRE_GPU=1" <<<"$out" && ! grep -q '\*\*\*Skipped' <<<"$out"; then
  ok "DPT_REQUIRE_GPU=1 ctest -L gpu: exit $rc, no test skipped ($failed failure lines)"
else
  fail "DPT_REQUIRE_GPU=1 ctest -L gpu: exit $rc"; echo "$out" | tail -15
fi

# Directly: the binary's status and its one line.
out=$(DPT_REQUIRE_GPU=1 "$build/tests/cuda_ops_test" 2>&1)
rc=$?
if [[ $rc -ne 0 && $rc -ne 77 ]] && grep -q '^FAILED: no GPU here' <<<"$out"; then
  ok "DPT_REQUIRE_GPU=1 cuda_ops_test: exit $rc: $(head -1 <<<"$out")"
else
  fail "DPT_REQUIRE_GPU=1 cuda_ops_test: exit $rc: $out"
fi

out=$(ctest --test-dir "$build" -L no-such-label --no-tests=error 2>&1)
if [[ $? -ne 0 ]]; then
  ok "--no-tests=error fails a selection without tests"
else
  fail "ctest -L no-such-label --no-tests=error passed"
fi

[[ $failures -eq 0 ]] || { echo "$failures failure(s)"; exit 1; }
echo "all checks passed"
