# SPDX-License-Identifier: MIT
# Sourced by integration scripts that compare training runs (after harness.sh and
# checkpoint_digest.sh; needs $bin and $work):
#   run NAME RANKS [--expect-failure] ARGS...  train on RANKS ranks (1 thread each) with
#       checkpoints in $work/NAME/, metrics in $work/NAME.jsonl, output in $work/NAME.log; its tail
#       printed when it fails (unless expected)
#   bitwise WHAT REFERENCE OTHER  the step-12 checkpoints and every logged loss, bit for bit
#   refused NAME WHAT PATTERN ARGS...  a 1-rank job with ARGS must fail, its output holding PATTERN
run() {  # run NAME RANKS ARGS...: one job writing $work/NAME/ and $work/NAME.jsonl
  local name=$1 ranks=$2 quiet_failure=0
  shift 2
  if [ "${1:-}" = --expect-failure ]; then quiet_failure=1; shift; fi
  local launch=()
  if [ "$ranks" -gt 1 ]; then launch=(timeout 600 mpirun -np "$ranks" --oversubscribe --bind-to none); fi
  "${launch[@]}" "$bin/train" "$@" --threads 1 --checkpoint-dir "$work/$name" --keep-last 0 \
    --metrics "$work/$name.jsonl" --quiet > "$work/$name.log" 2>&1 || {
      ((quiet_failure)) || { echo "--- $name failed:"; tail -20 "$work/$name.log"; }
      return 1; }
}

bitwise() {  # bitwise WHAT REFERENCE OTHER: step-12 state and every loss
  if [ "$(digest "$work/$2/step-12.h5" "$work/$2.jsonl")" = \
       "$(digest "$work/$3/step-12.h5" "$work/$3.jsonl")" ]; then
    ok "$1: $3 is bitwise $2"
  else
    fail "$1: $3 differs from $2"
    show_differences "$work/$2/step-12.h5" "$work/$3/step-12.h5"
  fi
}

refused() {  # refused NAME WHAT PATTERN ARGS...
  local name=$1 what=$2 pattern=$3
  shift 3
  if run "$name" 1 --expect-failure "$@"; then
    fail "$what was accepted"
  elif grep -q -- "$pattern" "$work/$name.log"; then
    ok "$what is refused: $pattern"
  else
    fail "$what refused without \"$pattern\":"; tail -3 "$work/$name.log"
  fi
}
