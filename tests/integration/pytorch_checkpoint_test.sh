#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A checkpoint loads into PyTorch through examples/load_checkpoint_pytorch.py (nn.Sequential from
# /model's "layers", load_state_dict(strict=True)) and computes the logits that `train eval`
# writes: `cnn` and `mlp` (with dropout), 5 training steps each, the first 256 test images, max
# |difference| <= 1e-4 relative to max(1, |logit|). The same for the model file of `train export`.
# Skips (77) where scripts/python finds no interpreter that imports torch, numpy and h5py.
# Usage: pytorch_checkpoint_test.sh SOURCE_DIR BIN_DIR
set -euo pipefail
src=${1:?usage: pytorch_checkpoint_test.sh SOURCE_DIR BIN_DIR}
bin=${2:?usage: pytorch_checkpoint_test.sh SOURCE_DIR BIN_DIR}
example="$src/examples/load_checkpoint_pytorch.py"
samples=256
tolerance=1e-4

if ! python=$("$src/scripts/python" --which 2>&1); then
  echo "SKIP: $python"
  exit 77
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin/dpt-data" import-fashion-mnist "$work/fm.h5" >/dev/null

# Runs a command; prints its output only when it fails (then the test stops).
run() {
  local out
  if ! out=$("$@" 2>&1); then
    printf 'FAIL: command failed: %s\n%s\n' "$*" "$out"
    exit 1
  fi
  last_output=$out
}

# compare NAME DPTRAIN_LOGITS.h5 PYTORCH_LOGITS.npy: max |difference| within the tolerance.
compare() {
  "$python" - "$@" "$samples" "$tolerance" <<'PY'
import sys
import h5py
import numpy as np
name, ours_path, theirs_path, samples, tolerance = sys.argv[1:]
samples, tolerance = int(samples), float(tolerance)
with h5py.File(ours_path, "r") as f:
    ours = f["logits"][()]
theirs = np.load(theirs_path)
expected = (samples, 10)
if ours.shape != expected or theirs.shape != expected or ours.dtype != np.float32:
    sys.exit(f"FAIL {name}: shapes dptrain {ours.shape} {ours.dtype}, PyTorch {theirs.shape}, "
             f"expected {expected} float32")
if not (np.isfinite(ours).all() and np.isfinite(theirs).all()) or np.ptp(ours) == 0:
    sys.exit(f"FAIL {name}: logits are not finite or all equal")
diff = np.abs(ours.astype(np.float64) - theirs.astype(np.float64))
rel = diff / np.maximum(1.0, np.abs(ours.astype(np.float64)))
i, j = np.unravel_index(np.argmax(rel), rel.shape)
report = (f"{name}: max |dptrain - PyTorch| {diff.max():.3e}, relative {rel.max():.3e} "
          f"(sample {i}, class {j}: dptrain {ours[i, j]:.7g}, PyTorch {theirs[i, j]:.7g}); "
          f"argmax agrees on {(ours.argmax(1) == theirs.argmax(1)).sum()}/{samples}")
if rel.max() > tolerance:
    sys.exit(f"FAIL {report}; {(rel > tolerance).sum()} of {rel.size} logits exceed {tolerance:g}")
print(f"ok   {report}")
PY
}

# pytorch_logits NAME FILE EXPECTED_FORMAT: the example script's logits, and its file-kind check.
pytorch_logits() {
  run "$python" "$example" "$2" --data "$work/fm.h5" --samples "$samples" --threads 2 \
      --logits "$work/$1-pytorch.npy"
  if ! grep -q ": $3 at step 5," <<<"$last_output"; then
    printf 'FAIL %s: expected a %s at step 5, the example printed:\n%s\n' "$1" "$3" "$last_output"
    exit 1
  fi
  grep "accuracy" <<<"$last_output" | sed "s/^/     $1 PyTorch: /"
}

for model in cnn mlp; do
  run "$bin/train" --data "$work/fm.h5" --model "$model" --dropout 0.25 --steps 5 \
      --train-samples 1280 --test-samples "$samples" --threads 2 --eval=false --quiet \
      --checkpoint-dir "$work/$model"
  checkpoint="$work/$model/$(cat "$work/$model/latest")"
  run "$bin/train" eval --checkpoint "$checkpoint" --data "$work/fm.h5" --samples "$samples" \
      --threads 2 --logits "$work/$model-dptrain.h5"
  sed "s/^/     $model dptrain: /" <<<"$last_output"

  pytorch_logits "$model-checkpoint" "$checkpoint" dptrain-checkpoint
  compare "$model checkpoint" "$work/$model-dptrain.h5" "$work/$model-checkpoint-pytorch.npy"

  run "$bin/train" export --checkpoint "$checkpoint" --out "$work/$model-model.h5"
  pytorch_logits "$model-export" "$work/$model-model.h5" dptrain-model
  compare "$model export" "$work/$model-dptrain.h5" "$work/$model-export-pytorch.npy"
done
