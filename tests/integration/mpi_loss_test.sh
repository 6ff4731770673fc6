#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# `mlp`, SGD, 20 steps of global batch 128 on Fashion-MNIST: the per-step loss that rank 0 writes
# on 2 and on 4 ranks (4 oversubscribed on small machines) matches the 1-rank run within 1e-4
# relative at every step. Usage: mpi_loss_test.sh BIN_DIR
set -euo pipefail
bin=${1:?usage: mpi_loss_test.sh BIN_DIR}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
"$bin/dpt-data" import-fashion-mnist "$work/fm.h5" >/dev/null
common=(--data "$work/fm.h5" --model mlp --optimizer sgd --lr 0.01
        --batch-size 128 --steps 20 --train-samples 2560 --seed 3 --threads 1 --eval=false --quiet)
"$bin/train" "${common[@]}" --metrics "$work/np1.jsonl"
for n in 2 4; do
  timeout 300 mpirun -np "$n" --oversubscribe --bind-to none "$bin/train" "${common[@]}" \
    --metrics "$work/np$n.jsonl"
done
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
def losses(n):
    with open(f"{work}/np{n}.jsonl") as f:
        return [json.loads(l)["loss"] for l in f if '"step"' in l and '"event":"step"' in l.replace(" ", "")]
one = losses(1)
assert len(one) == 20, f"1 rank wrote {len(one)} step lines"
worst = 0.0
for n in (2, 4):
    other = losses(n)
    assert len(other) == 20, f"{n} ranks wrote {len(other)} step lines"
    for step, (a, b) in enumerate(zip(one, other), 1):
        rel = abs(a - b) / abs(a)
        worst = max(worst, rel)
        assert rel <= 1e-4, f"step {step}: 1 rank {a}, {n} ranks {b} (relative {rel:.2e})"
print(f"per-step loss of 2 and 4 ranks within {worst:.2e} relative of 1 rank over 20 steps "
      f"(first {one[0]:.4f}, last {one[-1]:.4f})")
PY
