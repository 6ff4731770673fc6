#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The fault suite of a distributed job (docs/reliability.md), through the shipped binaries with
# DPT_FAULT (src/runtime/fault.h) injecting each fault on one rank:
# - a rank that stops (SIGSTOP), hangs outside MPI (sleep), or stops inside a gradient bucket:
#   the collective deadline fires on the others, names the collective, the step and the rank that
#   did not arrive, every rank that can speak prints, the job ends non-zero (not the outer timeout);
#   on 3 ranks the waiting peer is told apart from the missing one; a slow step within the
#   deadline is no fault;
# - divergent control flow (a skipped step in the middle or at the end, a rank leaving training
#   early): an error on every rank naming each rank's step; with --check-collectives, the
#   collective that differs;
# - a rank killed mid-step, rank 0 killed in each checkpoint phase, a rank exiting without
#   clean-up, a rank throwing: the job ends non-zero, the checkpoints left are complete, and
#   `--resume auto` continues to the same bits as an uninterrupted run;
# - SIGTERM to one rank: every rank stops after the same step with a checkpoint (exit 143);
# - SIGUSR2: every rank prints its flight record and training goes on.
# Usage: fault_test.sh BIN_DIR [--quick]
#   --quick (the sanitizer build, where every job is several times slower): one case of each kind
#   (stopped, sleeping, skipped step, early leave, --check-collectives, killed and resumed, throw,
#   SIGTERM), with a longer deadline so that slow steps never reach it.
set -uo pipefail
bin=${1:?usage: fault_test.sh BIN_DIR [--quick]}
quick=0
[[ ${2:-} == --quick ]] && quick=1
dl=4  # the deadline of the hang cases, seconds
((quick)) && dl=15
source "$(dirname "$0")/harness.sh"
common=(--data "$work/fm.h5" --model cnn --batch-size 96 --eval=false --threads 1 --quiet)

job() {  # job NAME RANKS FAULT ARGS...: runs to $work/NAME.log, sets $rc (124: outer timeout)
  local name=$1 ranks=$2 fault=$3
  shift 3
  DPT_FAULT=$fault timeout 180 mpirun --oversubscribe --bind-to none -np "$ranks" \
    "$bin/train" "${common[@]}" "$@" > "$work/$name.log" 2>&1
  rc=$?
}
expect() {  # expect NAME STATUS(nonzero|N) PATTERN...: the job's status and every pattern
  local name=$1 status=$2 missing=""
  shift 2
  for pattern in "$@"; do grep -q -- "$pattern" "$work/$name.log" || missing+=" '$pattern'"; done
  if [[ $rc -eq 124 ]]; then
    fail "$name: still running after 180 s (a hang)"
  elif [[ $status == nonzero && $rc -eq 0 ]] || [[ $status != nonzero && $rc -ne $status ]]; then
    fail "$name: exit $rc, expected $status"; tail -15 "$work/$name.log"
  elif [[ -n $missing ]]; then
    fail "$name: exit $rc but missing$missing in:"; grep -v '^  \(layers\|bucket\|total\)' "$work/$name.log" | tail -25
  else
    ok "$name (exit $rc)"
  fi
}
count() { grep -c -- "$2" "$work/$1.log"; }

# --- hangs: the deadline names who did not arrive ---
job stopped 2 stop@step:rank=1:step=2 --steps 6 --collective-timeout $dl
expect stopped nonzero "\[rank 0\] collective deadline (--collective-timeout $dl s: rank 0 waited" \
  "(step check, step 2); did not arrive: rank 1)" "rank 1: no answer within"
job sleeping 2 sleep@step:rank=1:step=2 --steps 6 --collective-timeout $dl
expect sleeping nonzero "did not arrive: rank 1" \
  "rank 1: not in a collective: its last, #[0-9]*, all-reduce of 4 8-byte values (step agreement, step 1)" \
  "\[rank 1\] collective deadline reported by rank 0"
if ((!quick)); then
job stopped-in-bucket 2 stop@allreduce:rank=1:step=3 --steps 6 --collective-timeout $dl
expect stopped-in-bucket nonzero "(gradient bucket [0-9], step 3); did not arrive: rank 1" \
  "rank 1: no answer within"
job stopped-of-3 3 stop@step:rank=2:step=2 --steps 6 --collective-timeout $dl
expect stopped-of-3 nonzero "did not arrive: rank 2)" "rank [01]: waiting in the same collective" \
  "rank 2: no answer within"
job slow-step 2 sleep=2@step:rank=1:step=2 --steps 4 --collective-timeout $dl
expect slow-step 0 "DPT_FAULT: injecting sleep"
fi

# --- divergent control flow: every rank names each rank's step ---
job skip-middle 2 skip@step:rank=1:step=3 --steps 6
expect skip-middle nonzero "ranks are at different steps (a rank skipped, repeated or left steps): rank 0 starts step 3; rank 1 starts step 4"
[[ $(count skip-middle "ranks are at different steps") -eq 2 ]] || fail "skip-middle: not printed by both ranks"
((quick)) || job skip-last 2 skip@step:rank=1:step=5 --steps 6
((quick)) || expect skip-last nonzero "rank 0 starts step 5; rank 1 has ended training after 6 steps"
job leave-early 2 leave@step:rank=1:step=3 --steps 6
expect leave-early nonzero "rank 0 starts step 3; rank 1 has ended training after 3 steps"
job check-collectives 2 skip@step:rank=1:step=3 --steps 6 --check-collectives
expect check-collectives nonzero \
  "collectives differ between ranks (--check-collectives): rank 0 issues #[0-9]*, all-reduce of 2 8-byte values (step check, step 3); rank 1 issues #[0-9]*, all-reduce of 2 8-byte values (step check, step 4)"

# --- deaths and errors: the job ends, what is on disk resumes to the same bits ---
run_to() {  # run_to NAME DIR FAULT ARGS...: a 2-rank 6-step job checkpointing every 2 steps
  local name=$1 dir=$2 fault=$3
  shift 3
  job "$name" 2 "$fault" --steps 6 --checkpoint-every 2 --checkpoint-dir "$work/$dir" --keep-last 0 "$@"
}
same_bits() {  # same_bits NAME A B: model and optimizer of two checkpoints bitwise equal
  if h5diff -q "$2" "$3" /model /model && h5diff -q "$2" "$3" /optimizer /optimizer; then
    ok "$1: resumed run is bitwise the uninterrupted one"
  else
    fail "$1: $2 and $3 differ"
  fi
}
run_to reference ref ""
expect reference 0
# A 2-rank checkpoint resumed on 1 and on 3 ranks (not bitwise: another world size rounds
# differently; --allow-inexact-resume says so) ends within 1e-5 of the uninterrupted run.
if ((!quick)); then
  for n in 1 3; do
    job "resume-on-$n" "$n" "" --steps 6 --resume "$work/ref/step-4.h5" --allow-inexact-resume \
      --checkpoint-dir "$work/resume-$n"
    expect "resume-on-$n" 0 "resuming a checkpoint of 2 rank(s) on $n"
    if h5diff -q -d 1e-5 "$work/ref/step-6.h5" "$work/resume-$n/step-6.h5" /model /model; then
      ok "resume-on-$n: parameters within 1e-5 of the uninterrupted run"
    else
      fail "resume-on-$n: parameters differ by more than 1e-5"
    fi
  done
fi
run_to killed killed sigkill@step:rank=1:step=3
expect killed nonzero
[[ $(readlink "$work/killed/latest" 2>/dev/null || cat "$work/killed/latest" 2>/dev/null) == *step-2.h5* ]] \
  || fail "killed: latest does not name step-2.h5: $(ls "$work/killed")"
run_to killed-resumed killed "" --resume auto
expect killed-resumed 0 "resuming from .*step-2.h5 at step 2"
same_bits killed "$work/ref/step-6.h5" "$work/killed/step-6.h5"
phases=(tmp renamed latest)
((quick)) && phases=(renamed)
for phase in "${phases[@]}"; do
  run_to "ckpt-$phase" "ckpt-$phase" "sigkill@checkpoint-$phase:rank=0" --log-all-ranks
  expect "ckpt-$phase" nonzero "DPT_FAULT: injecting sigkill at point 'checkpoint-$phase'"
  if ls "$work/ckpt-$phase"/*.tmp >/dev/null 2>&1 && [[ $phase != tmp ]]; then
    fail "ckpt-$phase: a temporary file is left after the rename"
  fi
  run_to "ckpt-$phase-resumed" "ckpt-$phase" "" --resume auto
  expect "ckpt-$phase-resumed" 0
  same_bits "ckpt-$phase" "$work/ref/step-6.h5" "$work/ckpt-$phase/step-6.h5"
done
if ((!quick)); then
  job exit-one 2 exit=3@step:rank=1:step=2 --steps 6
  expect exit-one nonzero
fi
job throw-one 2 throw@step:rank=1:step=2 --steps 6
expect throw-one nonzero "\[rank 1\] train: fault injected by DPT_FAULT at point 'step', step 2" \
  "this rank's last collectives:"

# --- signals ---
run_to sigterm sigterm sigterm@step:rank=1:step=2
expect sigterm 143 "stopping after step 3 on SIGTERM: writing a checkpoint"
[[ -f $work/sigterm/step-3.h5 ]] || fail "sigterm: no checkpoint of step 3: $(ls "$work/sigterm")"
((quick)) && { [[ $failures -eq 0 ]]; exit; }
# SIGUSR2 while both ranks sleep in step 3: each prints its flight record and the job goes on.
DPT_FAULT=sleep=3@step:step=3 timeout 180 mpirun --oversubscribe --bind-to none -np 2 \
  "$bin/train" "${common[@]}" --steps 6 > "$work/usr2.log" 2>&1 &
launcher=$!
for _ in $(seq 1 100); do
  [[ $(grep -c "injecting sleep" "$work/usr2.log") -ge 2 ]] && break
  sleep 0.2
done
# The ranks only: children of mpirun (itself the child of `timeout`) named train.
pkill -USR2 -x -P "$(pgrep -P "$launcher" -x mpirun)" train
wait "$launcher"
rc=$?
expect usr2 0 "\[rank 0\] flight record (SIGUSR2)" "\[rank 1\] flight record (SIGUSR2)" \
  "#[0-9]* all-reduce of 4 8-byte values (step agreement, step 2): started"

[[ $failures -eq 0 ]]
