#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Non-finite values and silent desynchronisation on 2 and 3 ranks, injected with DPT_FAULT:
#  - Inf input on rank 1, --nonfinite abort: every rank ends non-zero, the message names the step,
#    rank 1 and the parameter; no checkpoint left behind holds a NaN or Inf;
#  - the same under --nonfinite skip: exit 0, one skip in the summary, and the skipped step leaves
#    parameters and optimizer state bitwise as they were (4 steps with the last skipped = 3 steps);
#    past --nonfinite-skip-limit the job stops naming the limit;
#  - one bit flipped in one parameter of rank 1 of 3: the next parameter check stops the job naming
#    the parameter and the ranks;
#  - a checkpoint with a NaN weight (edited with h5py) is refused on resume, naming file and weight.
# Usage: integrity_fault_test.sh BIN_DIR
set -uo pipefail
bin=${1:?usage: integrity_fault_test.sh BIN_DIR}
here=$(dirname "$0")
py="$here/../../scripts/python"
source "$(dirname "$0")/harness.sh"
mpi() { local n=$1; shift; timeout 120 mpirun --oversubscribe --bind-to none -np "$n" "$@"; }
common=(--data "$work/fm.h5" --train-samples 1920 --model mlp --batch-size 96 --eval=false --threads 1 --quiet)

# expect NAME RC_WANTED(0|nonzero) OUTPUT PATTERN...
expect() {
  local name=$1 want=$2 rc=$3 out=$4
  shift 4
  if [[ $rc -eq 124 ]]; then fail "$name: still running after 120 s"; return; fi
  if [[ $want == 0 && $rc -ne 0 ]] || [[ $want != 0 && $rc -eq 0 ]]; then
    fail "$name: exit status $rc"; tail -15 <<<"$out"; return
  fi
  for pattern in "$@"; do
    if ! grep -qF -- "$pattern" <<<"$out"; then
      fail "$name: no '$pattern' in:"; tail -15 <<<"$out"; return
    fi
  done
  echo "ok   $name (exit $rc)"
}

# Every dataset under /model and /optimizer of each checkpoint is finite.
all_finite() {
  "$py" --needs h5py,numpy - "$@" <<'PY'
import sys, h5py, numpy as np
bad = []
for path in sys.argv[1:]:
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: bad.append(f"{path}:{n}") if isinstance(o, h5py.Dataset)
                     and n.startswith(("model/", "optimizer/")) and not np.isfinite(o[()]).all()
                     else None)
if bad:
    sys.exit("\n".join(bad))
PY
}

# ---- abort: Inf input on rank 1 at step 2, a checkpoint after every step
out=$(DPT_FAULT=inf@forward:rank=1:step=2 mpi 2 "$bin/train" "${common[@]}" --steps 4 \
  --checkpoint-dir "$work/abort" --checkpoint-every 1 --keep-last 0 2>&1)
expect "abort on 2 ranks" nonzero $? "$out" "non-finite gradients at step 2" \
  "rank 1: NaN or Inf in layers." "before the all-reduce" "--nonfinite abort"
if [[ $(grep -c "non-finite gradients at step 2" <<<"$out") -lt 1 ]] || grep -q "^done:" <<<"$out"; then
  fail "abort on 2 ranks: a rank finished training"
fi
ls "$work/abort"/step-*.h5 >/dev/null 2>&1 || fail "abort on 2 ranks: no checkpoint of steps 1-2"
[[ -e "$work/abort/step-3.h5" ]] && fail "abort on 2 ranks: a checkpoint of the poisoned step"
all_finite "$work/abort"/step-*.h5 || fail "abort on 2 ranks: a checkpoint holds NaN or Inf"

# ---- skip: the same fault at the last of 4 steps; 3 clean steps give the same bits
out=$(DPT_FAULT=inf@forward:rank=1:step=3 mpi 2 "$bin/train" "${common[@]}" --steps 4 \
  --nonfinite skip --checkpoint-dir "$work/skip" --metrics "$work/skip.jsonl" 2>&1)
expect "skip on 2 ranks" 0 $? "$out" "non-finite gradients at step 3" "rank 1: NaN or Inf in" \
  "skipping the step (--nonfinite skip)"
grep -q '"nonfinite_skipped":1' "$work/skip.jsonl" || fail "skip on 2 ranks: summary does not count 1 skip"
out=$(mpi 2 "$bin/train" "${common[@]}" --steps 3 --checkpoint-dir "$work/three" 2>&1) ||
  fail "3 clean steps: exit $?"
if "$py" --needs h5py,numpy - "$work/skip/step-4.h5" "$work/three/step-3.h5" <<'PY'
import sys, h5py
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
names = []
a.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) and n.startswith(("model/", "optimizer/")) else None)
assert names, "no datasets"
diff = [n for n in names if a[n][()].tobytes() != b[n][()].tobytes()]
if diff:
    sys.exit("differ: " + " ".join(diff))
PY
then echo "ok   the skipped step left parameters and optimizer state bitwise unchanged"
else fail "skip on 2 ranks: parameters after 4 steps with the last skipped differ from 3 steps"; fi

# ---- skip limit: two poisoned steps, at most one skipped
out=$(DPT_FAULT=nan@allreduce:rank=0:step=1,nan@allreduce:rank=1:step=2 mpi 2 "$bin/train" \
  "${common[@]}" --steps 4 --nonfinite skip --nonfinite-skip-limit 1 2>&1)
expect "skip limit on 2 ranks" nonzero $? "$out" "non-finite gradients at step 2" \
  "rank 1: NaN or Inf in" "--nonfinite-skip-limit 1"

# ---- one flipped bit on rank 1 of 3 after step 2's optimizer; checked every 2 steps
out=$(DPT_FAULT=flip@optimizer:rank=1:step=2 mpi 3 "$bin/train" "${common[@]}" --steps 6 \
  --check-params-every 2 2>&1)
expect "flipped bit on 3 ranks" nonzero $? "$out" \
  "parameters differ between ranks after step 3: first at layers.1.weight; rank 1 differs from rank 0 (ranks 0, 2 agree)"

# ---- resume from a checkpoint holding a NaN weight
"$py" --needs h5py,numpy - "$work/three/step-3.h5" <<'PY' || fail "could not edit the checkpoint"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r+") as f:
    w = f["model/layers.3.weight"]
    v = w[()]
    v.flat[5] = np.nan
    w[...] = v
PY
out=$("$bin/train" "${common[@]}" --steps 5 --resume "$work/three/step-3.h5" \
  --allow-inexact-resume 2>&1)
expect "resume from a NaN checkpoint" nonzero $? "$out" \
  "$work/three/step-3.h5: /model/layers.3.weight holds NaN at element 5" "refusing to resume"

[[ $failures -eq 0 ]]
