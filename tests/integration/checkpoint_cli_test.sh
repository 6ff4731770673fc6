#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Checkpoints through the shipped binary: an unwritable --checkpoint-dir fails before step 1 on
# every rank; SIGUSR1 to mpirun stops both ranks after one step with a checkpoint and exit 138, and
# --resume auto finishes the run; a truncated newest checkpoint is passed over with a warning; a
# malformed `latest` is refused, and so are `latest` or a step-<n>.h5 that is a symbolic link out of
# the directory (unread); a file-size limit (disk full) fails the write cleanly and leaves
# the previous checkpoint and `latest` as they were; `train eval` and `train export` agree. The
# two-rank runs' summaries say world_size 2.
# Usage: checkpoint_cli_test.sh BIN_DIR
set -uo pipefail
bin=${1:?usage: checkpoint_cli_test.sh BIN_DIR}
source "$(dirname "$0")/summary.sh"
source "$(dirname "$0")/harness.sh"
# A small model: checkpoints of ~1 MB keep the test fast.
cat >"$work/small.toml" <<EOF
data = "$work/fm.h5"
train-samples = 3200
test-samples = 500
batch-size = 64
threads = 1
log-every = 1
[model]
layers = [
  { type = "flatten" },
  { type = "linear", in = 784, out = 256 },
  { type = "relu" },
  { type = "linear", in = 256, out = 10 },
]
EOF
mpi=(mpirun --oversubscribe --bind-to none -np 2)
train=("$bin/train" --config "$work/small.toml")
# An error must not end in a crash report (glibc abort, HDF5's exit-time diagnostics).
no_crash() { ! grep -q -e 'Signal:' -e 'corrupted' -e 'HDF5-DIAG' -e 'Segmentation' <<<"$1"; }

# ---- preflight: a checkpoint directory under a regular file
echo "not a directory" >"$work/plain-file"
out=$(timeout 120 "${mpi[@]}" "${train[@]}" --epochs 1 --checkpoint-dir "$work/plain-file/ckpt" 2>&1)
rc=$?
if [[ $rc -ne 0 ]] && grep -q "checkpoint directory $work/plain-file/ckpt" <<<"$out" &&
  ! grep -q '^step 1' <<<"$out" && [[ $(grep -c 'rank 0 failed\|\[rank [01]\] train:' <<<"$out") -ge 2 ]]; then
  ok "unwritable checkpoint directory fails on both ranks before step 1 (exit $rc)"
else
  fail "unwritable checkpoint directory: exit $rc"; echo "$out" | tail -15
fi

# ---- SIGUSR1 to mpirun: both ranks finish the step, rank 0 checkpoints, all exit 138
ckpt="$work/ckpt"
# The signal goes to mpirun itself (Open MPI forwards SIGUSR1 to every rank), so no `timeout`
# wrapper here; the loop below gives up after 60 s.
"${mpi[@]}" "${train[@]}" --epochs 50 --checkpoint-dir "$ckpt" --metrics "$work/stop.jsonl" >"$work/stop.log" 2>&1 &
job=$!
for _ in $(seq 600); do
  grep -q '^step 20/' "$work/stop.log" 2>/dev/null && break
  sleep 0.1
done
kill -USR1 "$job"
wait "$job"
rc=$?
stopped_at=$(sed -n 's/.*stopping after step \([0-9]*\) on SIGUSR1.*/\1/p' "$work/stop.log")
if [[ $rc -eq 138 && -n "$stopped_at" && $(cat "$ckpt/latest" 2>/dev/null) == "step-$stopped_at.h5" ]] &&
  no_crash "$(cat "$work/stop.log")" && expect_world_size "$work/stop.jsonl" 2; then
  ok "SIGUSR1 stopped both ranks after step $stopped_at with a checkpoint (exit $rc)"
else
  fail "SIGUSR1: exit $rc, stopped at '${stopped_at}', latest '$(cat "$ckpt/latest" 2>/dev/null)'"
  tail -15 "$work/stop.log"
fi

# ---- resume auto finishes the run from there: two epochs (of 50 steps) past the stop, wherever
# the signal caught the first run (on an idle machine it may be well past step 20)
epochs=$(( ${stopped_at:-0} / 50 + 2 ))
final=$(( epochs * 50 ))
out=$(timeout 300 "${mpi[@]}" "${train[@]}" --epochs "$epochs" --checkpoint-dir "$ckpt" --resume auto \
  --metrics "$work/resume.jsonl" 2>&1)
rc=$?
if [[ $rc -eq 0 ]] && grep -q "resuming from $ckpt/step-$stopped_at.h5 at step $stopped_at" <<<"$out" &&
  grep -q '^test accuracy' <<<"$out" && [[ $(cat "$ckpt/latest") == "step-$final.h5" ]] &&
  expect_world_size "$work/resume.jsonl" 2; then
  ok "resume auto continued from step $stopped_at to step $final"
else
  fail "resume auto: exit $rc"; echo "$out" | tail -15
fi

# ---- eval and export
eval_ckpt=$("$bin/train" eval --checkpoint "$ckpt" --data "$work/fm.h5" --samples 500 2>&1)
"$bin/train" export --checkpoint "$ckpt/step-$final.h5" --out "$work/model.h5" >/dev/null 2>&1
eval_model=$("$bin/train" eval --checkpoint "$work/model.h5" --data "$work/fm.h5" --samples 500 2>&1)
if [[ "${eval_ckpt#*step $final}" == "${eval_model#*step $final}" ]] && grep -q 'accuracy 0\.[5-9]' <<<"$eval_ckpt"; then
  ok "train eval of the checkpoint and of its export agree: ${eval_ckpt#*: }"
else
  fail "eval/export disagree:"; echo "$eval_ckpt"; echo "$eval_model"
fi

# ---- a truncated newest checkpoint: resume auto falls back to the previous one and says so
ckpt2="$work/ckpt2"
"$bin/train" --config "$work/small.toml" --steps 20 --checkpoint-every 10 --checkpoint-dir "$ckpt2" --quiet >/dev/null 2>&1
truncate -s $(($(stat -c %s "$ckpt2/step-20.h5") / 2)) "$ckpt2/step-20.h5"
out=$(timeout 300 "$bin/train" --config "$work/small.toml" --steps 30 --checkpoint-dir "$ckpt2" --resume auto --quiet 2>&1)
rc=$?
if [[ $rc -eq 0 ]] && grep -q "passing over a damaged checkpoint: .*$ckpt2/step-20.h5: not an HDF5 file or truncated" <<<"$out" &&
  grep -q "falling back to $ckpt2/step-10.h5" <<<"$out" && grep -q 'resuming from .*step-10.h5 at step 10' <<<"$out"; then
  ok "a truncated newest checkpoint is passed over; resumed from step 10"
else
  fail "fallback past a truncated checkpoint: exit $rc"; echo "$out" | tail -15
fi

# ---- a malformed `latest` is refused
for bad in "../x" "/etc/passwd" "garbage"; do
  echo "$bad" >"$ckpt2/latest"
  out=$(timeout 120 "$bin/train" --config "$work/small.toml" --steps 40 --checkpoint-dir "$ckpt2" --resume auto --quiet 2>&1)
  rc=$?
  if [[ $rc -ne 0 ]] && grep -qF "$ckpt2/latest: expected the name of a checkpoint in this directory (step-<n>.h5), found \"$bad\"" <<<"$out"; then
    ok "latest holding '$bad' is refused"
  else
    fail "latest holding '$bad': exit $rc"; echo "$out" | tail -5
  fi
done
echo "step-30.h5" >"$ckpt2/latest"

# ---- symbolic links leading out of the directory are refused before step 1, naming the link and
# its target; the error shows nothing of the file `latest` leads to
echo "SECRET-TOKEN-1234" >"$work/secret.txt"
mkdir -p "$work/outside" && cp "$ckpt2/step-30.h5" "$work/outside/other-run.h5"
for link in latest step-99.h5; do
  target=$work/secret.txt
  [[ $link == step-99.h5 ]] && target=$work/outside/other-run.h5
  mv "$ckpt2/latest" "$work/latest.saved"
  [[ $link == step-99.h5 ]] && cp "$work/latest.saved" "$ckpt2/latest"
  ln -s "$target" "$ckpt2/$link"
  out=$(timeout 120 "$bin/train" --config "$work/small.toml" --steps 40 --checkpoint-dir "$ckpt2" --resume auto 2>&1)
  rc=$?
  if [[ $rc -ne 0 ]] && grep -qF "$ckpt2/$link is a symbolic link to $target, outside the checkpoint directory $ckpt2" <<<"$out" &&
    ! grep -q -e SECRET -e '^step ' <<<"$out" && no_crash "$out"; then
    ok "$link -> $target is refused before step 1 (exit $rc)"
  else
    fail "$link -> $target: exit $rc"; echo "$out" | tail -5
  fi
  rm -f "$ckpt2/$link" && mv "$work/latest.saved" "$ckpt2/latest"
done

# ---- disk full: the file-size limit stops the write of step 40; step 30 and latest are intact
before=$(cksum <"$ckpt2/step-30.h5")
out=$( (ulimit -f 300 && timeout 120 "$bin/train" --config "$work/small.toml" --steps 40 \
  --checkpoint-dir "$ckpt2" --resume auto --quiet) 2>&1)
rc=$?
if [[ $rc -eq 1 ]] && grep -q "checkpoint of step 40 not written" <<<"$out" && grep -q "$ckpt2/step-40.h5.tmp" <<<"$out" &&
  [[ ! -e "$ckpt2/step-40.h5.tmp" && ! -e "$ckpt2/step-40.h5" && $(cat "$ckpt2/latest") == "step-30.h5" &&
    $(cksum <"$ckpt2/step-30.h5") == "$before" ]] && no_crash "$out"; then
  ok "disk full: clear error, .tmp removed, step-30.h5 and latest untouched (exit $rc)"
else
  fail "disk full: exit $rc"; echo "$out" | tail -15; ls -la "$ckpt2"
fi

[[ $failures -eq 0 ]] && echo "all checkpoint CLI checks passed" && exit 0
echo "$failures check(s) failed"
exit 1
