#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# scripts/dpt-plot draws a PNG from a real metrics file (and rejects a file that is not one);
# bench/plot_timeline.py draws a PNG from a real --timeline trace. Both run as the README says
# (scripts/dpt-plot, scripts/python), whatever `python3` is on PATH. Skipped (77) where no
# interpreter has matplotlib.
# Usage: plot_scripts_test.sh SOURCE_DIR BIN_DIR
set -uo pipefail
src=${1:?usage: plot_scripts_test.sh SOURCE_DIR BIN_DIR}
bin=${2:?usage: plot_scripts_test.sh SOURCE_DIR BIN_DIR}
if ! why=$("$src/scripts/python" --needs matplotlib --which 2>&1); then
  echo "SKIP: $why"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin/dpt-data" import-fashion-mnist "$work/fm.h5" >/dev/null || exit 1
"$bin/train" --data "$work/fm.h5" --model mlp --epochs 2 --train-samples 1280 --test-samples 200 \
  --threads 1 --quiet --metrics "$work/m.jsonl" --timeline "$work/t.json" --timeline-steps 4 \
  >/dev/null 2>&1 || { echo "FAIL: training"; exit 1; }
is_png() { [[ -s "$1" && $(head -c 8 "$1" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]]; }
failures=0
"$src/scripts/dpt-plot" "$work/m.jsonl" "$work/curves.png" && is_png "$work/curves.png" &&
  echo "ok   dpt-plot wrote a PNG" || { echo "FAIL dpt-plot"; failures=$((failures + 1)); }
"$src/scripts/dpt-plot" "$work/m.jsonl" "$work/m.jsonl" --labels a b -o "$work/two.png" &&
  is_png "$work/two.png" && echo "ok   dpt-plot overlays two files" ||
  { echo "FAIL dpt-plot overlay"; failures=$((failures + 1)); }
echo "not json" >"$work/bad.jsonl"
out=$("$src/scripts/dpt-plot" "$work/bad.jsonl" "$work/bad.png" 2>&1)
[[ $? -ne 0 ]] && grep -q "bad.jsonl:1: not JSON" <<<"$out" && echo "ok   dpt-plot rejects a bad file" ||
  { echo "FAIL dpt-plot accepted a bad file: $out"; failures=$((failures + 1)); }
"$src/scripts/python" --needs matplotlib "$src/bench/plot_timeline.py" "$work/t.json" "$work/timeline.png" --steps 2-3 &&
  is_png "$work/timeline.png" && echo "ok   plot_timeline wrote a PNG" ||
  { echo "FAIL plot_timeline"; failures=$((failures + 1)); }
exit $((failures > 0))
