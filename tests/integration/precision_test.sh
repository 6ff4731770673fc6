#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# --precision bf16 and fp16 across ranks (Note [Mixed precision in layers], Note [Loss scaling]):
# - exact mode in bf16: `cnn` (AdamW, clipping, dropout) on 2 and 3 ranks is the same bits as on
#   1 rank (parameters, optimizer state, every loss);
# - exact mode in fp16 with a first loss scale of 2^20, which overflows: `mlp` (SGD with momentum,
#   accumulation) on 2 ranks is the 1-rank run bit for bit, the same steps skipped for overflow on
#   every rank (the decision comes from the reduced gradients), the scale equal;
# - resume: bf16 on 2 ranks, 6 steps then 6 more from the checkpoint, is bitwise 12 straight steps
#   (default mode); fp16 exact, 6 steps on 1 rank then 6 on 2, is bitwise 12 (the loss scale and
#   its count restored from the checkpoint);
# - --grad-reduce bf16 on 2 ranks repeats its bits, differs from the fp32 reduction and stays
#   within 5% of its losses (measured: 1.1% here);
# - the precision differs from fp32 (the inputs are rounded), and bad settings (--tf32 on the CPU
#   among them) are refused by name.
# Usage: precision_test.sh BIN_DIR
set -euo pipefail
bin=${1:?usage: precision_test.sh BIN_DIR}
here=$(dirname "$0")
py="$here/../../scripts/python"
source "$here/harness.sh"
source "$here/checkpoint_digest.sh"
source "$here/train_runs.sh"

summary() {  # summary NAME KEY: a key of the run's summary line
  "$py" - "$work/$1.jsonl" "$2" <<'PY'
import json, sys
s = [r for r in map(json.loads, open(sys.argv[1])) if r.get("event") == "summary"][-1]
print(s.get(sys.argv[2]))
PY
}

cnn=(--data "$work/fm.h5" --model cnn --dropout 0.3 --optimizer adamw --lr 0.003
     --clip-grad-norm 0.5 --batch-size 48 --steps 12 --train-samples 960 --eval=false --exact
     --shard-size 4 --seed 5 --precision bf16)
run bf16-np1 1 "${cnn[@]}"
for n in 2 3; do
  run "bf16-np$n" "$n" "${cnn[@]}"
  bitwise "exact bf16 cnn, $n ranks" bf16-np1 "bf16-np$n"
done
run fp32-np1 1 "${cnn[@]/bf16/fp32}"
if same_state "$work/fp32-np1/step-12.h5" "$work/bf16-np1/step-12.h5"; then
  fail "bf16 gave the fp32 bits: the inputs were not rounded"
else
  ok "bf16 differs from fp32 (the GEMM and convolution inputs are rounded)"
fi

mlp=(--data "$work/fm.h5" --model mlp --optimizer sgd --lr 0.05 --momentum 0.9 --batch-size 24
     --steps 12 --train-samples 480 --eval=false --exact --shard-size 4 --seed 6
     --precision fp16 --loss-scale 1048576 --loss-scale-growth-interval 3)
run fp16-np1 1 "${mlp[@]}"
run fp16-np2 2 "${mlp[@]}"
bitwise "exact fp16 mlp with overflows, 2 ranks" fp16-np1 fp16-np2
overflows=$(summary fp16-np2 overflow_steps)
if [[ $overflows -ge 1 && $overflows -lt 12 && $(summary fp16-np1 loss_scale) == $(summary fp16-np2 loss_scale) ]]; then
  ok "fp16: $overflows step(s) skipped for overflow on every rank alike, final scale $(summary fp16-np2 loss_scale)"
else
  fail "fp16: overflow steps $overflows, scales $(summary fp16-np1 loss_scale) / $(summary fp16-np2 loss_scale)"
fi

plain=(--data "$work/fm.h5" --model cnn --optimizer adamw --lr 0.003 --batch-size 48 --steps 12
       --train-samples 960 --eval=false --seed 7 --precision bf16)
run bf16-straight 2 "${plain[@]}"
run bf16-first6 2 "${plain[@]}" --checkpoint-every 6
run bf16-resumed 2 "${plain[@]}" --resume "$work/bf16-first6/step-6.h5"
if same_state "$work/bf16-straight/step-12.h5" "$work/bf16-resumed/step-12.h5"; then
  ok "bf16 resume on 2 ranks: 6 + 6 steps is bitwise 12"
else
  fail "bf16 resume differs"; show_differences "$work/bf16-straight/step-12.h5" "$work/bf16-resumed/step-12.h5"
fi
run fp16-first6 1 "${mlp[@]}" --checkpoint-every 6
run fp16-resumed 2 "${mlp[@]}" --resume "$work/fp16-first6/step-6.h5"
if same_state "$work/fp16-np1/step-12.h5" "$work/fp16-resumed/step-12.h5" &&
   [[ $(summary fp16-resumed loss_scale) == $(summary fp16-np1 loss_scale) ]]; then
  ok "fp16 resume: 6 steps on 1 rank + 6 on 2 is bitwise 12, the loss scale continued"
else
  fail "fp16 resume differs (scale $(summary fp16-resumed loss_scale) against $(summary fp16-np1 loss_scale))"
fi

# --grad-reduce bf16: the gradients cross the wire as bf16 (Note [bf16 gradient reduction]); the
# run repeats its bits, differs from the fp32 reduction, and stays close to it.
reduce=(--data "$work/fm.h5" --model mlp --optimizer adamw --lr 0.001 --batch-size 48 --steps 12
        --train-samples 960 --eval=false --seed 8)
run reduce-fp32 2 "${reduce[@]}"
run reduce-bf16 2 "${reduce[@]}" --grad-reduce bf16
run reduce-bf16-again 2 "${reduce[@]}" --grad-reduce bf16
bitwise "--grad-reduce bf16 repeats itself" reduce-bf16 reduce-bf16-again
if [[ $(summary reduce-bf16 grad_reduce) == bf16 ]] &&
   ! same_state "$work/reduce-fp32/step-12.h5" "$work/reduce-bf16/step-12.h5" &&
   "$py" - "$work/reduce-fp32.jsonl" "$work/reduce-bf16.jsonl" <<'PY'
import json, sys
losses = [[r["loss"] for r in map(json.loads, open(f)) if r.get("event") == "step"] for f in sys.argv[1:]]
worst = max(abs(a - b) / a for a, b in zip(*losses))
print(f"  largest relative loss difference, bf16 against fp32 reduction: {worst:.2g} (bound 5e-2)")
sys.exit(0 if 0 < worst <= 5e-2 else 1)
PY
then
  ok "--grad-reduce bf16 on 2 ranks: rounded gradients, losses within 5% of the fp32 reduction"
else
  fail "--grad-reduce bf16: summary $(summary reduce-bf16 grad_reduce), or not close to fp32"
fi
refused bad-reduce "--grad-reduce bf16 with --exact" \
  "'grad-reduce = bf16' works with neither exact mode" "${cnn[@]}" --grad-reduce bf16

refused bad-precision "--precision fp8" "'precision' must be fp32, bf16 or fp16, got 'fp8'" \
  "${plain[@]/bf16/fp8}"
# With bf16 it would do nothing.
refused bad-scale "--loss-scale with bf16" "apply to precision fp16 only" "${plain[@]}" \
  --loss-scale 1024
# The CPU has no TF32: the flag would change nothing there.
refused tf32-on-cpu "--tf32 on the CPU" "has no TF32: drop --tf32 or run on a GPU" \
  "${plain[@]}" --device cpu --tf32

[ "$failures" = 0 ] || { echo "$failures check(s) failed"; exit 1; }
echo "precision: all checks passed"
