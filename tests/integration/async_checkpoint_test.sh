#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# --async-checkpoint through the shipped binary, on 1 and 2 ranks: the checkpoints written in the
# background equal a synchronous run's at the same steps (model and optimizer, bitwise; also with
# --zero 1); a write
# that fails (a file-size limit: disk full) ends every rank non-zero with a message naming the file
# and leaves `latest` on the previous checkpoint; SIGTERM while a write is in flight (DPT_FAULT at
# the point where rank 0's .tmp is complete) ends with complete checkpoints, from which
# `--resume auto` continues to the bits of an uninterrupted run.
# Usage: async_checkpoint_test.sh BIN_DIR
set -uo pipefail
bin=${1:?usage: async_checkpoint_test.sh BIN_DIR}
source "$(dirname "$0")/summary.sh"
source "$(dirname "$0")/harness.sh"
# A small model: checkpoints of ~2.4 MB (parameters and two AdamW slots) keep the test fast.
cat >"$work/small.toml" <<EOF
data = "$work/fm.h5"
train-samples = 3200
batch-size = 64
threads = 1
eval = false
log-every = 1
[model]
layers = [
  { type = "flatten" },
  { type = "linear", in = 784, out = 256 },
  { type = "relu" },
  { type = "linear", in = 256, out = 10 },
]
EOF
run() {  # run RANKS ARGS...: train on RANKS ranks (1: no mpirun); output on stdout
  local ranks=$1
  shift
  if [[ $ranks -eq 1 ]]; then
    timeout 120 "$bin/train" --config "$work/small.toml" "$@" 2>&1
  else
    timeout 120 mpirun --oversubscribe --bind-to none -np "$ranks" \
      "$bin/train" --config "$work/small.toml" "$@" 2>&1
  fi
}
no_crash() { ! grep -q -e 'Signal:' -e 'corrupted' -e 'HDF5-DIAG' -e 'Segmentation' <<<"$1"; }
# Model and optimizer of two checkpoints bitwise equal (the root's config differs: it records
# async-checkpoint).
same_bits() { h5diff -q "$1" "$2" /model /model && h5diff -q "$1" "$2" /optimizer /optimizer; }

# ---- (a) the same checkpoints as a synchronous run, on 1 and 2 ranks
for ranks in 1 2; do
  for mode in sync async; do
    flag=()
    [[ $mode == async ]] && flag=(--async-checkpoint)
    out=$(run "$ranks" --steps 40 --checkpoint-every 10 --keep-last 0 "${flag[@]}" \
      --checkpoint-dir "$work/$mode-$ranks" --metrics "$work/$mode-$ranks.jsonl")
    rc=$?
    [[ $rc -eq 0 ]] || { fail "$mode on $ranks rank(s): exit $rc"; echo "$out" | tail -10; }
    echo "$out" >"$work/$mode-$ranks.log"
  done
  differ=""
  for step in 10 20 30 40; do
    same_bits "$work/sync-$ranks/step-$step.h5" "$work/async-$ranks/step-$step.h5" ||
      differ+=" $step"
  done
  log=$(cat "$work/async-$ranks.log")
  if [[ -z $differ ]] && grep -q "checkpoint $work/async-$ranks/step-10.h5 (step 10, snapshot [0-9]* ms.*writing in the background)" <<<"$log" &&
    [[ $(cat "$work/async-$ranks/latest") == step-40.h5 ]] &&
    [[ $(summary_field "$work/async-$ranks.jsonl" async_checkpoint) == true ]] &&
    [[ $(summary_field "$work/async-$ranks.jsonl" checkpoints) == 4 ]] &&
    summary_field "$work/async-$ranks.jsonl" checkpoint_write_s >/dev/null &&
    summary_field "$work/async-$ranks.jsonl" checkpoint_stall_s >/dev/null &&
    grep -q 'checkpoints [0-9.]* s: 4 taken, stall [0-9.]* s, background writes [0-9.]* s)' <<<"$log" &&
    expect_world_size "$work/async-$ranks.jsonl" "$ranks"; then
    ok "$ranks rank(s): background checkpoints of steps 10-40 equal the synchronous run's"
  else
    fail "$ranks rank(s): background checkpoints differ at steps:${differ:- none} or the log/summary lacks them"
    echo "$log" | grep -v '^step ' | tail -8
  fi
done

# ---- ... and with the optimizer sharded (--zero 1: rank 0 gathers the state, then snapshots it)
for mode in sync async; do
  flag=()
  [[ $mode == async ]] && flag=(--async-checkpoint)
  run 2 --zero 1 --steps 20 --checkpoint-every 10 --keep-last 0 "${flag[@]}" \
    --checkpoint-dir "$work/zero-$mode" >"$work/zero-$mode.log" || fail "--zero 1 $mode: exit $?"
done
if same_bits "$work/zero-sync/step-10.h5" "$work/zero-async/step-10.h5" &&
  same_bits "$work/zero-sync/step-20.h5" "$work/zero-async/step-20.h5"; then
  ok "--zero 1 on 2 ranks: background checkpoints equal the synchronous ones"
else
  fail "--zero 1: background checkpoints differ from the synchronous ones"
  tail -5 "$work/zero-async.log"
fi

# ---- (b) disk full: a file-size limit makes the background write of step 20 fail (the resumed
# run's first); every rank exits non-zero naming the file; `latest` stays on step 10
ckpt="$work/full"
run 2 --steps 10 --async-checkpoint --checkpoint-dir "$ckpt" >/dev/null
before=$(cksum <"$ckpt/step-10.h5")
# The limit on rank 0 only (the one that writes), and TCP between the ranks: Open MPI's
# shared-memory segment files would exceed it and kill the ranks at start-up (SIGXFSZ). TCP over
# loopback only: another test's network namespaces may add and remove interfaces meanwhile. bash's
# ulimit -f counts 1024-byte blocks: 300 KiB, far below one checkpoint.
out=$(timeout 120 mpirun --oversubscribe --bind-to none --mca btl self,tcp --mca btl_tcp_if_include lo -np 2 \
  bash -c '[[ $OMPI_COMM_WORLD_RANK != 0 ]] || ulimit -f 300; exec "$@"' limited "$bin/train" --config "$work/small.toml" \
  --steps 40 --checkpoint-every 10 --async-checkpoint --checkpoint-dir "$ckpt" --resume auto 2>&1)
rc=$?
message="background write of checkpoint $ckpt/step-20.h5 failed: checkpoint of step 20 not written"
if [[ $rc -ne 0 && $rc -ne 124 ]] && grep -q "\[rank 0\].*$message" <<<"$out" &&
  grep -q "\[rank 1\].*rank 0 failed: $message" <<<"$out" && grep -q "File too large" <<<"$out" &&
  [[ $(cat "$ckpt/latest") == step-10.h5 && ! -e "$ckpt/step-20.h5" && ! -e "$ckpt/step-20.h5.tmp" ]] &&
  [[ $(cksum <"$ckpt/step-10.h5") == "$before" ]] && ! grep -q "^step 31/" <<<"$out" && no_crash "$out"; then
  ok "disk full in the background: both ranks exit non-zero naming step-20.h5, latest stays step-10.h5 (exit $rc)"
else
  fail "disk full in the background: exit $rc, latest '$(cat "$ckpt/latest" 2>/dev/null)'"
  echo "$out" | grep -v '^step ' | tail -15; ls -la "$ckpt"
fi

# ---- (c) SIGTERM while rank 0's write of step 10 is in flight: both ranks stop after the next
# step, the write in flight and the stop's checkpoint are complete, exit 143; resume auto then
# reaches the same bits as the uninterrupted synchronous run
ckpt="$work/term"
out=$(DPT_FAULT=sigterm@checkpoint-tmp:rank=0 run 2 --steps 40 --checkpoint-every 10 --async-checkpoint \
  --keep-last 0 --checkpoint-dir "$ckpt")
rc=$?
stopped_at=$(sed -n 's/.*stopping after step \([0-9]*\) on SIGTERM.*/\1/p' <<<"$out" | head -1)
if [[ $rc -eq 143 && -n $stopped_at && $stopped_at -gt 10 && $(cat "$ckpt/latest") == "step-$stopped_at.h5" ]] &&
  h5ls "$ckpt/step-10.h5" >/dev/null 2>&1 && h5ls "$ckpt/step-$stopped_at.h5" >/dev/null 2>&1 &&
  ! ls "$ckpt"/*.tmp >/dev/null 2>&1 && no_crash "$out"; then
  ok "SIGTERM during the write of step 10: stopped after step $stopped_at with complete checkpoints (exit $rc)"
else
  fail "SIGTERM during a write: exit $rc, stopped at '$stopped_at', latest '$(cat "$ckpt/latest" 2>/dev/null)'"
  echo "$out" | grep -v '^step ' | tail -15; ls -la "$ckpt"
fi
out=$(run 2 --steps 40 --checkpoint-every 10 --async-checkpoint --keep-last 0 --checkpoint-dir "$ckpt" --resume auto)
rc=$?
if [[ $rc -eq 0 ]] && grep -q "resuming from $ckpt/step-$stopped_at.h5" <<<"$out" &&
  same_bits "$ckpt/step-40.h5" "$work/sync-2/step-40.h5"; then
  ok "resume auto after the stop reaches the uninterrupted run's step 40 bitwise"
else
  fail "resume after SIGTERM: exit $rc"; echo "$out" | grep -v '^step ' | tail -10
fi

[[ $failures -eq 0 ]] && echo "all asynchronous checkpoint checks passed" && exit 0
echo "$failures check(s) failed"
exit 1
