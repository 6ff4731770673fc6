#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Exact mode (--exact): after 12 steps, every parameter, every optimizer slot, every logged loss and
# the evaluation are the same bits on 1, 2, 3, 4 and 8 ranks (8 oversubscribed) and with 1 or 2
# threads a rank: `cnn` with dropout, flip augmentation, AdamW, clipping and a cosine schedule with
# warm-up; `mlp` with Nesterov SGD and a step schedule (several shards a rank: accumulation).
# Elastic resume: 2 ranks for 6 steps, resumed on 3 and on 1 for 6 more, equals 12 uninterrupted
# steps on 4 ranks. A resume on another world size outside exact mode is refused (and allowed with
# --allow-inexact-resume). `train verify` says "bitwise identical" in exact mode and exits 0; it
# reports a difference (exit 0, within the default mode's bound) without --exact, and exits 2 when
# one rank's gradients are corrupted.
# Usage: exact_test.sh BIN_DIR [--quick]
#   --quick (the sanitizer build, where every job is ~10x slower): cnn on 1, 3 and 8 ranks and
#   with 2 threads, mlp on 1 and 4 ranks, the elastic resume on 3 ranks, and every other check.
set -euo pipefail
bin=${1:?usage: exact_test.sh BIN_DIR [--quick]}
quick=0
[ "${2:-}" = --quick ] && quick=1
here=$(dirname "$0")
source "$here/summary.sh"
py="$here/../../scripts/python"
source "$here/checkpoint_digest.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
"$bin/dpt-data" import-fashion-mnist "$work/fm.h5" >/dev/null
failures=0
ok() { echo "ok: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

run() {  # run NAME RANKS THREADS ARGS...: one job writing $work/NAME/ and $work/NAME.jsonl
  local name=$1 ranks=$2 threads=$3 quiet_failure=0
  shift 3
  if [ "${1:-}" = --expect-failure ]; then quiet_failure=1; shift; fi
  local launch=()
  if [ "$ranks" -gt 1 ]; then launch=(timeout 600 mpirun -np "$ranks" --oversubscribe --bind-to none); fi
  "${launch[@]}" "$bin/train" "$@" --threads "$threads" --checkpoint-dir "$work/$name" \
    --keep-last 0 --metrics "$work/$name.jsonl" --quiet > "$work/$name.log" 2>&1 || {
      ((quiet_failure)) || { echo "--- $name failed:"; tail -20 "$work/$name.log"; }
      return 1; }
}

cnn=(--data "$work/fm.h5" --model cnn --dropout 0.3 --augment flip --optimizer adamw --lr 0.003
     --clip-grad-norm 0.5 --lr-schedule cosine --warmup-steps 3 --batch-size 48 --steps 12
     --train-samples 960 --test-samples 300 --eval --exact --shard-size 2 --seed 5)
mlp=(--data "$work/fm.h5" --model mlp --optimizer sgd --lr 0.05 --momentum 0.9 --nesterov
     --lr-schedule step --lr-step-size 4 --lr-gamma 0.5 --batch-size 24 --steps 12
     --train-samples 480 --eval=false --exact --shard-size 2 --seed 6)

compare_runs() {  # compare_runs MODEL REFERENCE OTHERS...
  local model=$1 ref=$2
  shift 2
  local expected
  expected=$(digest "$work/$ref/step-12.h5" "$work/$ref.jsonl")
  for other in "$@"; do
    if [ "$(digest "$work/$other/step-12.h5" "$work/$other.jsonl")" = "$expected" ]; then
      ok "$model: $other is bitwise $ref"
    else
      fail "$model: $other differs from $ref"
      show_differences "$work/$ref/step-12.h5" "$work/$other/step-12.h5"
    fi
  done
}

cnn_ranks=(1 2 3 4 8) cnn_threaded=(cnn-np1-t2 cnn-np2-t2) mlp_ranks=(1 3 4) elastic=(3 1)
if ((quick)); then
  cnn_ranks=(1 3 4 8) cnn_threaded=(cnn-np1-t2) mlp_ranks=(1 4) elastic=(3)
fi
for n in "${cnn_ranks[@]}"; do run "cnn-np$n" "$n" 1 "${cnn[@]}"; done
run cnn-np1-t2 1 2 "${cnn[@]}"
((quick)) || run cnn-np2-t2 2 2 "${cnn[@]}"
expect_world_size "$work/cnn-np8.jsonl" 8
others=()
for n in "${cnn_ranks[@]:1}"; do others+=("cnn-np$n"); done
compare_runs cnn cnn-np1 "${others[@]}" "${cnn_threaded[@]}"

for n in "${mlp_ranks[@]}"; do run "mlp-np$n" "$n" 1 "${mlp[@]}"; done
others=()
for n in "${mlp_ranks[@]:1}"; do others+=("mlp-np$n"); done
if ((quick)); then
  compare_runs mlp mlp-np1 "${others[@]}"
else
  run mlp-np2-t2 2 2 "${mlp[@]}"
  compare_runs mlp mlp-np1 "${others[@]}" mlp-np2-t2
fi

# Elastic resume: step 6 of a 2-rank run, continued on 3 and on 1 rank.
run cnn-first6 2 1 "${cnn[@]}" --checkpoint-every 6
for n in "${elastic[@]}"; do
  run "cnn-resumed-np$n" "$n" 1 "${cnn[@]}" --resume "$work/cnn-first6/step-6.h5"
  grep -q "continuing on $n bit for bit" "$work/cnn-resumed-np$n.log" ||
    fail "resume on $n: no 'continuing on $n bit for bit' in the log"
done
# The metrics of a resumed run hold steps 7..12 only: compare parameters and optimizer state.
for n in "${elastic[@]}"; do
  if same_state "$work/cnn-np4/step-12.h5" "$work/cnn-resumed-np$n/step-12.h5"; then
    ok "elastic: 2 ranks x 6 steps + $n rank(s) x 6 steps is bitwise 4 ranks x 12 steps"
  else fail "elastic resume on $n rank(s) differs from 4 ranks x 12 steps"; fi
done

# Outside exact mode a resume on another world size is refused, with the reason, unless asked for.
plain=(--data "$work/fm.h5" --model mlp --optimizer sgd --lr 0.05 --batch-size 24 --steps 4
       --train-samples 480 --eval=false --seed 6)
run plain-np2 2 1 "${plain[@]}" --checkpoint-every 2
if run plain-resumed 1 1 --expect-failure "${plain[@]}" --resume "$work/plain-np2/step-2.h5"; then
  fail "a non-exact 2-rank checkpoint resumed on 1 rank without --allow-inexact-resume"
elif grep -q "cannot be bit for bit because the checkpoint was not written in exact mode" \
    "$work/plain-resumed.log"; then
  ok "a non-exact resume on another world size is refused with the reason"
else
  fail "refusal without the reason:"; tail -3 "$work/plain-resumed.log"
fi
if run plain-allowed 1 1 "${plain[@]}" --resume "$work/plain-np2/step-2.h5" --allow-inexact-resume &&
    grep -q "allow-inexact-resume" "$work/plain-allowed.log"; then
  ok "--allow-inexact-resume resumes with a warning"
else
  fail "--allow-inexact-resume"; tail -3 "$work/plain-allowed.log"
fi

# train verify.
verify() {  # verify NAME ARGS...: output in $work/NAME.verify, exit status echoed
  local name=$1
  shift
  set +e
  timeout 600 mpirun -np 2 --oversubscribe --bind-to none "$bin/train" verify "$@" \
    > "$work/$name.verify" 2>&1
  echo $?
  set -e
}
small=(--data "$work/fm.h5" --model cnn --dropout 0.3 --optimizer adamw --batch-size 24
       --steps 3 --train-samples 240 --threads 1 --quiet --seed 2)
rc=$(verify exact "${small[@]}" --exact --shard-size 4)
if [ "$rc" = 0 ] && [ "$(grep -c 'bitwise identical  *bitwise identical' "$work/exact.verify")" = 8 ]; then
  ok "verify --exact: every parameter bitwise identical, exit 0"
else
  fail "verify --exact: exit $rc"; cat "$work/exact.verify"
fi
rc=$(verify inexact "${small[@]}")
if [ "$rc" = 0 ] && grep -q "e-[0-9][0-9] / " "$work/inexact.verify" && grep -q PASS "$work/inexact.verify"; then
  ok "verify without --exact: differences reported, within the bound, exit 0"
else
  fail "verify without --exact: exit $rc"; cat "$work/inexact.verify"
fi
rc=$(DPT_VERIFY_CORRUPT_RANK=1 verify corrupt "${small[@]}" --exact --shard-size 4)
if [ "$rc" = 2 ] && grep -q "FAIL: differences beyond the bound" "$work/corrupt.verify"; then
  ok "verify with rank 1's gradients corrupted: FAIL, exit 2"
else
  fail "verify with a corrupted rank: exit $rc"; tail -5 "$work/corrupt.verify"
fi

[ "$failures" = 0 ] || { echo "$failures check(s) failed"; exit 1; }
echo "exact mode: all checks passed"
