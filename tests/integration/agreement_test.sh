#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The start-up agreement catches what differs behind the same command line. Two ranks launched
# MPMD (mpirun -np 1 ... : -np 1 ...), each in its own directory with the same relative --data
# path, so that the path and every flag agree and only the file's content differs:
#   - one label changed (h5py)                   -> non-zero, "ranks disagree", the data.train
#                                                   line of both ranks, their checksums differing;
#   - the normalisation attribute `mean` changed -> the same, the two means named;
#   - identical copies                           -> the job trains (exit 0): nothing else differs.
# With --build OTHER_TRAIN: rank 0 runs BIN_DIR/train and rank 1 OTHER_TRAIN (another build
# variant, e.g. the release binary next to the ASan one) on the same file -> non-zero and the
# build.sanitizers lines name what each binary's --version says; exit 77 (skip) when OTHER_TRAIN
# does not exist (that variant is not built).
# Usage: agreement_test.sh SOURCE_DIR BIN_DIR [--build OTHER_TRAIN]
set -uo pipefail
src=${1:?usage: agreement_test.sh SOURCE_DIR BIN_DIR [--build OTHER_TRAIN]}
bin=${2:?usage: agreement_test.sh SOURCE_DIR BIN_DIR [--build OTHER_TRAIN]}
other=
if [[ "${3:-}" == --build ]]; then
  other=${4:?--build needs the train binary of the other variant}
  if [[ ! -x "$other" ]]; then
    echo "skip: $other is not built (build that variant first)"; exit 77
  fi
fi
source "$(dirname "$0")/harness.sh"
mpi=(mpirun --oversubscribe --bind-to none)
common=(--data data.h5 --model mlp --steps 2 --batch-size 64 --train-samples 1000 --threads 1
        --eval=false --quiet)

# run_pair NAME TRAIN0 TRAIN1: runs both ranks from $work/a and $work/b; sets $out and $rc.
run_pair() {
  out=$(timeout 120 "${mpi[@]}" -np 1 -wdir "$work/a" "$1" "${common[@]}" : \
        -np 1 -wdir "$work/b" "$2" "${common[@]}" 2>&1)
  rc=$?
}
# fresh_copies: $work/a/data.h5 and $work/b/data.h5, both the imported file.
fresh_copies() {
  rm -rf "$work/a" "$work/b" && mkdir -p "$work/a" "$work/b" &&
    cp "$work/fm.h5" "$work/a/data.h5" && cp "$work/fm.h5" "$work/b/data.h5"
}
# edit_b PYTHON_STATEMENTS: runs them with `f` open read-write on $work/b/data.h5.
edit_b() {
  "$src/scripts/python" --needs h5py,numpy -c "
import h5py, numpy as np
with h5py.File('$work/b/data.h5', 'r+') as f:
    $1" || { echo "FAIL cannot edit $work/b/data.h5 with h5py"; exit 1; }
}
# The data.train line of rank R in $out, and the checksum in a line.
data_line() { grep -m1 "^  rank $1: data\.train = " <<<"$out"; }
checksum() { grep -o 'xxh64=[0-9a-f]*' <<<"$1" | cut -d= -f2; }

if [[ -n "$other" ]]; then
  fresh_copies
  run_pair "$bin/train" "$other"
  mine=$("$bin/train" --version | sed -n 's/^  sanitizers: //p')
  theirs=$("$other" --version | sed -n 's/^  sanitizers: //p')
  if [[ $rc -ne 0 && $rc -ne 124 && -n "$mine" && -n "$theirs" && "$mine" != "$theirs" ]] &&
    grep -q "ranks disagree on their set-up" <<<"$out" &&
    grep -qxF "  rank 0: build.sanitizers = $mine" <<<"$out" &&
    grep -qxF "  rank 1: build.sanitizers = $theirs" <<<"$out" && ! grep -q '^step ' <<<"$out"; then
    ok "$bin/train with $other: build.sanitizers '$mine' vs '$theirs' named, exit $rc"
  else
    fail "two builds ($mine, $theirs): exit $rc"; echo "$out" | tail -20
  fi
  [[ $failures -eq 0 ]]
  exit
fi

# ---- identical copies: the job trains
fresh_copies
run_pair "$bin/train" "$bin/train"
if [[ $rc -eq 0 ]] && ! grep -q "disagree" <<<"$out"; then
  ok "identical copies behind the same path train (exit 0)"
else
  fail "identical copies: exit $rc"; echo "$out" | tail -20
fi

# ---- one label changed (sample 5: inside --train-samples 1000)
fresh_copies
edit_b "l = f['train/labels']; l[5] = (int(l[5]) + 1) % 10"
run_pair "$bin/train" "$bin/train"
line0=$(data_line 0) line1=$(data_line 1)
sum0=$(checksum "$line0") sum1=$(checksum "$line1")
if [[ $rc -ne 0 && $rc -ne 124 ]] && grep -q "ranks disagree on their set-up" <<<"$out" &&
  [[ "$line0" == *"data.train = data.h5:/train N=1000 "* && "$line1" == *"data.h5:/train N=1000 "* &&
     "$sum0" =~ ^[0-9a-f]{16}$ && "$sum1" =~ ^[0-9a-f]{16}$ && "$sum0" != "$sum1" ]] &&
  ! grep -q "rank 1: config\." <<<"$out" && ! grep -q '^step ' <<<"$out"; then
  ok "one label changed: data.train named on both ranks, xxh64 $sum0 vs $sum1 (exit $rc)"
else
  fail "one label changed: exit $rc, lines '$line0' / '$line1'"; echo "$out" | tail -20
fi

# ---- the normalisation attribute `mean` changed
fresh_copies
edit_b "f.attrs['mean'] = np.float32(0.3)"
run_pair "$bin/train" "$bin/train"
line0=$(data_line 0) line1=$(data_line 1)
if [[ $rc -ne 0 && $rc -ne 124 ]] && grep -q "ranks disagree on their set-up" <<<"$out" &&
  [[ "$line0" == *" mean=0.286040604 "* && "$line1" == *" mean=0.300000012 "* &&
     "$(checksum "$line0")" != "$(checksum "$line1")" ]]; then
  ok "mean changed: data.train names mean 0.286040604 vs 0.300000012 (exit $rc)"
else
  fail "mean changed: exit $rc, lines '$line0' / '$line1'"; echo "$out" | tail -20
fi
[[ $failures -eq 0 ]]
