#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The gpt through the shipped binaries, on a character-level corpus made of the project's own
# documentation (no network): dpt-data import-text, training lowers the loss and reports
# perplexity and tokens/s; a run killed after its step-20 checkpoint resumes to the same bits as
# the uninterrupted run; per-step losses on 2 and 4 ranks within 1e-6 relative of 1 rank; `train
# verify --exact` bitwise on 2 ranks; `train sample` the same text for a seed and another for
# another seed, a prompt character outside the vocabulary refused by offset; an image model on text,
# the gpt on images and a block size larger than a split refused by name; with PyTorch at hand,
# examples/gpt_pytorch.py computes `train eval --logits` within 1e-4.
# Usage: gpt_test.sh SOURCE_DIR BIN_DIR
set -uo pipefail
src=${1:?usage: gpt_test.sh SOURCE_DIR BIN_DIR}
bin=${2:?usage: gpt_test.sh SOURCE_DIR BIN_DIR}
source "$(dirname "$0")/summary.sh"
source "$(dirname "$0")/harness.sh"
mpi() { timeout 300 mpirun --oversubscribe --bind-to none -np "$@"; }

cat "$src"/docs/*.md "$src/README.md" >"$work/corpus.txt"
if "$bin/dpt-data" import-text "$work/text.h5" "$work/corpus.txt" >"$work/import.log" 2>&1; then
  ok "import-text: $(cat "$work/import.log")"
else
  fail "import-text"; cat "$work/import.log"; exit 1
fi
tiny=(--data "$work/text.h5" --model gpt --n-layer 2 --n-head 2 --n-embd 32 --block-size 16
      --batch-size 8 --threads 1 --seed 3 --lr 3e-3 --test-samples 64 --quiet)
steps_of() {  # the per-step losses of a metrics file, one per line
  "$src/scripts/python" --needs json - "$1" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("event") == "step":
        print(repr(r["loss"]))
PY
}

# ---- training: the loss falls; evaluation reports perplexity; the summary tokens/s
"$bin/train" "${tiny[@]}" --steps 40 --checkpoint-dir "$work/ref" --checkpoint-every 20 \
  --metrics "$work/ref.jsonl" >"$work/ref.log" 2>&1 || { fail "training"; tail "$work/ref.log"; }
mapfile -t losses < <(steps_of "$work/ref.jsonl")
eval_line=$(grep '"event": *"eval"' "$work/ref.jsonl" | tail -1)
if [[ ${#losses[@]} -eq 40 ]] && awk -v a="${losses[0]}" -v b="${losses[39]}" 'BEGIN{exit !(b < a - 0.5)}' &&
  grep -q '"perplexity"' <<<"$eval_line" && grep -q '"tokens_per_sec"' "$work/ref.jsonl"; then
  ok "40 steps: loss ${losses[0]} -> ${losses[39]}, evaluation with perplexity, tokens/s"
else
  fail "training: ${#losses[@]} steps, losses ${losses[0]:-?} -> ${losses[39]:-?}, eval: $eval_line"
fi

# ---- resume: killed after the step-20 checkpoint, resumed, the same bits at step 40
# (In a subshell whose stderr is dropped: bash reports the SIGKILL of a foreground child there.)
(DPT_FAULT=sigkill@step:step=25 "$bin/train" "${tiny[@]}" --steps 40 --checkpoint-dir "$work/killed" \
  --checkpoint-every 20 >"$work/killed.log" 2>&1) 2>/dev/null
"$bin/train" "${tiny[@]}" --steps 40 --checkpoint-dir "$work/killed" --checkpoint-every 20 \
  --resume auto >>"$work/killed.log" 2>&1
if h5diff -q "$work/ref/step-40.h5" "$work/killed/step-40.h5" /model /model &&
  h5diff -q "$work/ref/step-40.h5" "$work/killed/step-40.h5" /optimizer /optimizer; then
  ok "killed at step 25, resumed from step 20: model and optimizer bitwise the uninterrupted run's"
else
  fail "resume: step-40 checkpoints differ"; tail -5 "$work/killed.log"
fi

# ---- ranks: the same per-step losses on 1, 2 and 4 ranks (rounding only: see mpi_loss_test.sh)
"$bin/train" "${tiny[@]}" --steps 15 --eval=false --metrics "$work/np1.jsonl" >/dev/null 2>&1
mapfile -t one < <(steps_of "$work/np1.jsonl")
for n in 2 4; do
  mpi "$n" "$bin/train" "${tiny[@]}" --steps 15 --eval=false --metrics "$work/np$n.jsonl" >/dev/null 2>&1
  expect_world_size "$work/np$n.jsonl" "$n"
  mapfile -t other < <(steps_of "$work/np$n.jsonl")
  worst=$(paste <(printf '%s\n' "${one[@]}") <(printf '%s\n' "${other[@]}") |
    awk '{d = ($1 - $2) / $1; if (d < 0) d = -d; if (d > w) w = d} END {printf "%.2e", w + 0}')
  if [[ ${#one[@]} -eq 15 && ${#other[@]} -eq 15 ]] && awk -v w="$worst" 'BEGIN{exit !(w <= 1e-6)}'; then
    ok "$n ranks: per-step loss within $worst relative of 1 rank over 15 steps"
  else
    fail "$n ranks: ${#other[@]} steps, worst relative difference $worst (bound 1e-6)"
  fi
done
mpi 2 "$bin/train" verify "${tiny[@]}" --steps 3 --exact --shard-size 2 >"$work/verify.log" 2>&1
rc=$?
if [[ $rc -eq 0 ]] && [[ $(grep -c 'bitwise identical  *bitwise identical' "$work/verify.log") -eq 15 ]]; then
  ok "train verify --exact on 2 ranks: all 15 parameters bitwise identical"
else
  fail "train verify --exact: exit $rc"; cat "$work/verify.log"
fi

# ---- sampling
ck="$work/ref/step-40.h5"
a=$("$bin/train" sample --checkpoint "$ck" --prompt "The " --tokens 80 --temperature 0.8 --top-k 10 --seed 1)
b=$("$bin/train" sample --checkpoint "$ck" --prompt "The " --tokens 80 --temperature 0.8 --top-k 10 --seed 1)
c=$("$bin/train" sample --checkpoint "$ck" --prompt "The " --tokens 80 --temperature 0.8 --top-k 10 --seed 2)
if [[ -n $a && $a == "$b" && $a != "$c" && $a == "The "* ]]; then
  ok "sample: the same text for seed 1 twice, another for seed 2"
else
  fail "sample: seed 1 gave '$a' then '$b', seed 2 '$c'"
fi
out=$("$bin/train" sample --checkpoint "$ck" --prompt "ab€" 2>&1)
rc=$?
if [[ $rc -ne 0 ]] && grep -q "U+20AC at byte offset 2 is not in the vocabulary" <<<"$out"; then
  ok "sample: a prompt character outside the vocabulary is refused by offset"
else
  fail "sample with '€': exit $rc: $out"
fi

# ---- bad input
expect_error() {  # expect_error NAME PATTERN COMMAND...
  local name=$1 pattern=$2 out rc
  shift 2
  out=$("$@" 2>&1)
  rc=$?
  if [[ $rc -ne 0 ]] && grep -q -- "$pattern" <<<"$out"; then
    ok "$name: refused ($pattern)"
  else
    fail "$name: exit $rc: $(tail -3 <<<"$out")"
  fi
}
expect_error "cnn on text" "holds text (train it with --model gpt)" \
  "$bin/train" --data "$work/text.h5" --model cnn --steps 1 --quiet
expect_error "gpt on images" "holds images (import a text corpus" \
  "$bin/train" --data "$work/fm.h5" --model gpt --steps 1 --quiet
head -c 300 "$work/corpus.txt" >"$work/short.txt"
"$bin/dpt-data" import-text "$work/short.h5" "$work/short.txt" >/dev/null
expect_error "block size over the test split" "block size 64 is larger than split /test" \
  "$bin/train" --data "$work/short.h5" --model gpt --steps 1 --quiet
expect_error "heads not dividing the width" "n_head 3 does not divide n_embd 32" \
  "$bin/train" --data "$work/text.h5" --model gpt --n-embd 32 --n-head 3 --steps 1 --quiet

# ---- PyTorch: the example's logits are train eval's
if python=$("$src/scripts/python" --which 2>&1); then
  "$bin/train" eval --checkpoint "$ck" --data "$work/text.h5" --samples 32 --logits "$work/ours.h5" >/dev/null
  "$python" "$src/examples/gpt_pytorch.py" "$ck" --data "$work/text.h5" --windows 32 \
    --logits "$work/torch.npy" >/dev/null
  if "$python" - "$work" <<'PY'
import sys, h5py, numpy as np
ours = h5py.File(f"{sys.argv[1]}/ours.h5", "r")["logits"][()]
theirs = np.load(f"{sys.argv[1]}/torch.npy")
assert ours.shape == theirs.shape == (32 * 16, ours.shape[1]), (ours.shape, theirs.shape)
worst = float(np.max(np.abs(ours - theirs) / np.maximum(1.0, np.abs(ours))))
print(f"max difference {worst:.1e}")
sys.exit(0 if worst <= 1e-4 else 1)
PY
  then
    ok "PyTorch (examples/gpt_pytorch.py) gives train eval's logits within 1e-4"
  else
    fail "PyTorch logits differ from train eval's"
  fi
else
  echo "skip PyTorch logits: $python"
fi

[[ $failures -eq 0 ]] || { echo "$failures check(s) failed"; exit 1; }
echo "gpt: all checks passed"
