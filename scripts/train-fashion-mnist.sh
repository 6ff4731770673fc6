#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs what is missing, builds, imports Fashion-MNIST and trains `cnn` for 2 epochs, printing
# the test accuracy. Extra arguments go to `train` (e.g. --threads 1 --metrics run.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/ccache}
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target train dpt-data
mkdir -p data
[[ -f data/fmnist.h5 ]] || build/bin/dpt-data import-fashion-mnist data/fmnist.h5
build/bin/train --data data/fmnist.h5 --model cnn --epochs 2 --batch-size 128 \
  --optimizer adamw --lr 1e-3 "$@"
