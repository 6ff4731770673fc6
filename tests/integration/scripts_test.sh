#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The helper scripts, without building or training anything:
# - scripts/python with a `python3` first on PATH that lacks torch and matplotlib (a real Python
#   without its site-packages, like a pyenv shim): scripts/python, scripts/dpt-plot and the
#   benchmarks still run where some interpreter has the modules, and fail naming each interpreter
#   tried where none has; DPT_PYTHON is used alone; a bench script started by that `python3` says
#   how to run it instead of a traceback.
# - scripts/install-deps.sh: no silent no-op option (--bench is refused), iproute2 in the set.
# - tests/integration/summary.sh (the world_size check of the MPI tests), through jq and Python.
# Usage: scripts_test.sh SOURCE_DIR
set -uo pipefail
src=${1:?usage: scripts_test.sh SOURCE_DIR}
src=$(cd "$src" && pwd)
failures=0
check() {  # check NAME CONDITION-STATUS DETAIL
  if [[ $2 -eq 0 ]]; then echo "ok   $1"; else echo "FAIL $1: $3"; failures=$((failures + 1)); fi
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
py="$src/scripts/python"

# ---- a python3 on PATH without torch, numpy, h5py, matplotlib
real=$("$py" --needs json --which) || { echo "FAIL: no python3 at all: $real"; exit 1; }
mkdir "$work/shim"
printf '#!/bin/sh\nexec %s -S "$@"\n' "$real" >"$work/shim/python3"   # -S: no site-packages
chmod +x "$work/shim/python3"
shim_path="$work/shim:$PATH"
out=$(PATH=$shim_path python3 -c "import torch" 2>&1); rc=$?
[[ $rc -ne 0 ]] && grep -q "No module named 'torch'" <<<"$out"
check "the python3 first on PATH lacks torch" $? "exit $rc: $out"

# Where this machine has an interpreter with torch (and one with matplotlib), the shim must not
# hide it; where it has none, the error must name what was tried.
with_torch=$(env -u DPT_PYTHON "$py" --which 2>/dev/null)
with_mpl=$(env -u DPT_PYTHON "$py" --needs matplotlib --which 2>/dev/null)
out=$(PATH=$shim_path env -u DPT_PYTHON "$py" --which 2>&1); rc=$?
if [[ -n "$with_torch" ]]; then
  [[ $rc -eq 0 && "$out" == "$with_torch" ]]
  check "scripts/python --which finds $with_torch past the shim" $? "exit $rc: $out"
  out=$(PATH=$shim_path env -u DPT_PYTHON "$py" -c "import torch, numpy, h5py; print('imported')" 2>&1)
  [[ "$out" == imported ]]
  check "scripts/python runs code that imports torch, numpy, h5py" $? "$out"
  out=$(cd "$src" && PATH=$shim_path env -u DPT_PYTHON scripts/python bench/compare_pytorch.py --help 2>&1); rc=$?
  [[ $rc -eq 0 ]] && grep -q "dptrain beside PyTorch" <<<"$out"
  check "scripts/python bench/compare_pytorch.py --help" $? "exit $rc: $out"
else
  [[ $rc -eq 3 ]] && grep -q "no Python interpreter here imports torch, numpy, h5py" <<<"$out" &&
    grep -q "python3 on PATH $work/shim/python3: ModuleNotFoundError: No module named 'torch'" <<<"$out"
  check "scripts/python without any torch names the shim and what it lacks" $? "exit $rc: $out"
fi

# DPT_PYTHON is the only candidate: the shim named there is refused, not swapped for another.
out=$(DPT_PYTHON=$work/shim/python3 "$py" --which 2>&1); rc=$?
[[ $rc -eq 3 ]] && grep -q "DPT_PYTHON $work/shim/python3: ModuleNotFoundError: No module named 'torch'" <<<"$out" &&
  [[ $(grep -c "^  " <<<"$out") -eq 1 ]]
check "DPT_PYTHON lacking torch is refused alone" $? "exit $rc: $out"
out=$(DPT_PYTHON=$work/shim/python3 "$py" --needs json -c "import sys; print(sys.executable)" 2>&1)
[[ "$out" == "$real" ]]  # the shim execs the real interpreter
check "DPT_PYTHON runs what needs only what it has" $? "$out"
out=$("$py" --needs 'os;x' -c pass 2>&1); rc=$?
[[ $rc -eq 2 ]] && grep -q -- "--needs expects module names" <<<"$out"
check "scripts/python rejects a malformed --needs" $? "exit $rc: $out"

# Bench scripts started by the shim (their `#!/usr/bin/env python3`) say how to run them.
for case in "compare_pytorch.py|--data x.h5|torch|scripts/python bench/compare_pytorch.py" \
            "compare_ddp.py|--data x.h5|torch|scripts/python bench/compare_ddp.py" \
            "scaling.py|--data x.h5|matplotlib|scripts/python --needs matplotlib bench/scaling.py" \
            "plot_timeline.py|t.json t.png|matplotlib|scripts/python --needs matplotlib bench/plot_timeline.py"; do
  IFS='|' read -r script args module advice <<<"$case"
  # shellcheck disable=SC2086  # args: words
  out=$(cd "$src" && PATH=$shim_path bench/$script $args 2>&1); rc=$?
  [[ $rc -ne 0 ]] && grep -q "cannot import $module" <<<"$out" && grep -qF "$advice" <<<"$out" &&
    ! grep -q Traceback <<<"$out"
  check "bench/$script under the shim: one clear error" $? "exit $rc: $out"
done

# scripts/dpt-plot as the README runs it, under the shim.
cat >"$work/m.jsonl" <<'EOF'
{"event":"step","step":1,"epoch":0,"loss":2.3,"lr":0.001,"samples_per_sec":800.0}
{"event":"step","step":2,"epoch":0,"loss":2.1,"lr":0.001,"samples_per_sec":800.0}
{"event":"eval","epoch":0,"step":2,"split":"test","loss":2.0,"accuracy":0.3,"samples":100}
{"event":"summary","steps":2,"samples_per_sec":800.0,"world_size":2,"batch_size":128}
EOF
out=$(PATH=$shim_path env -u DPT_PYTHON "$src/scripts/dpt-plot" "$work/m.jsonl" "$work/c.png" 2>&1); rc=$?
if [[ -n "$with_mpl" ]]; then
  [[ $rc -eq 0 && -s "$work/c.png" ]]
  check "scripts/dpt-plot draws under the shim (with $with_mpl)" $? "exit $rc: $out"
else
  [[ $rc -eq 3 ]] && grep -q "imports matplotlib" <<<"$out"
  check "scripts/dpt-plot without matplotlib anywhere: one clear error" $? "exit $rc: $out"
fi
out=$(PATH=$shim_path python3 "$src/scripts/dpt_plot.py" "$work/m.jsonl" "$work/d.png" 2>&1); rc=$?
[[ $rc -ne 0 ]] && grep -q "cannot import matplotlib" <<<"$out" && grep -q "scripts/dpt-plot" <<<"$out"
check "scripts/dpt_plot.py started by the shim: one clear error" $? "exit $rc: $out"

# ---- install-deps: every option means something
out=$("$src/scripts/install-deps.sh" --bench 2>&1); rc=$?
[[ $rc -eq 2 ]] && grep -q "unknown argument '--bench'" <<<"$out"
check "install-deps.sh --bench is refused, not ignored" $? "exit $rc: $out"
list=$("$src/scripts/install-deps.sh" --list); rc=$?
for p in iproute2 python3-torch python3-h5py python3-numpy python3-matplotlib python3-pip openmpi-bin; do
  [[ $rc -eq 0 ]] && grep -qx "$p" <<<"$list"
  check "install-deps.sh installs $p" $? "exit $rc"
done

# ---- summary.sh, with jq (where installed) and with Python
head -n 2 "$work/m.jsonl" >"$work/no-summary.jsonl"
for via in jq python; do
  if [[ $via == jq ]] && ! command -v jq >/dev/null; then
    echo "skip summary.sh through jq: not installed"
    continue
  fi
  (
    # shellcheck disable=SC2034  # read by summary.sh
    [[ $via == jq ]] || summary_jq=""
    source "$src/tests/integration/summary.sh"
    fails=0
    expect_world_size "$work/m.jsonl" 2 || fails=$((fails + 1))
    expect_world_size "$work/m.jsonl" 1 2>/dev/null && fails=$((fails + 1))
    expect_world_size "$work/no-summary.jsonl" 2 2>/dev/null && fails=$((fails + 1))
    expect_world_size "$work/missing.jsonl" 2 2>/dev/null && fails=$((fails + 1))
    [[ $(summary_field "$work/m.jsonl" batch_size) == 128 ]] || fails=$((fails + 1))
    exit $fails
  )
  check "summary.sh through $via: world_size 2 passes; 1, no summary line, no file fail" $? "see above"
done

[[ $failures -eq 0 ]] && echo "all script checks passed"
[[ $failures -eq 0 ]]
