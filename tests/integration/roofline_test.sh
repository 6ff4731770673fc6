#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The roofline benchmark end to end, fast and without timing assertions:
# - dpt-limits at tiny sizes: its JSON names the CPU, oneDNN's ISA and OpenBLAS's core, has every
#   sgemm shape (square at --n, three products per layer of mlp and cnn at --batch) with positive
#   finite rates and GFLOP = 2mnk, and the four memory loops with positive finite GB/s, the
#   write-allocate figures one stream more than counted; a bad option is refused.
# - bench/roofline.py --quick (as the README runs it, through scripts/python): a table row for
#   the forward and backward of every layer of both models, the optimizer, the data wait and the
#   step; the work of the phases from the layer shapes (GEMM FLOP, the first layer without an
#   input gradient, pooling and optimizer bytes), each limit the better of dpt-limits before and
#   after training, and each share = achieved / limit; with --cap-isa avx2, dpt-limits and train
#   both run AVX2 code.
# Usage: roofline_test.sh SOURCE_DIR BIN_DIR
set -uo pipefail
src=${1:?usage: roofline_test.sh SOURCE_DIR BIN_DIR}
bin=${2:?usage: roofline_test.sh SOURCE_DIR BIN_DIR}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
py="$src/scripts/python"
failures=0
check() {  # check NAME STATUS DETAIL
  if [[ $2 -eq 0 ]]; then echo "ok   $1"; else echo "FAIL $1: $3"; failures=$((failures + 1)); fi
}

out=$(timeout 60 "$bin/dpt-limits" --n 64 --batch 4 --mib 2 --repeats 1 --json "$work/limits.json" 2>&1)
check "dpt-limits runs" $? "$out"
echo "$out"
why=$("$py" --needs json - "$work/limits.json" <<'PY' 2>&1
import json, math, sys
d = json.load(open(sys.argv[1]))
def pos(v):
    return isinstance(v, (int, float)) and math.isfinite(v) and v > 0
for key in ("cpu", "onednn_isa", "onednn_version", "openblas_core", "openblas_config"):
    assert isinstance(d.get(key), str) and d[key], f"no {key}"
assert d["cpu"].startswith("CPU: "), d["cpu"]
assert d["threads"] == 1 and d["batch"] == 4 and d["repeats"] == 1, "settings not echoed"
g = d["sgemm"]
assert len(g) == 1 + 3 * 7, f"{len(g)} sgemm rows, expected the square and 3 per layer of 7"
sq = [x for x in g if x["product"] == "square"]
assert len(sq) == 1 and sq[0]["m"] == sq[0]["n"] == sq[0]["k"] == 64, sq
for x in g:
    for k in ("onednn_gflops", "openblas_gflops", "best_gflops", "gflop"):
        assert pos(x[k]), f"{x['model']} {x['layers']} {x['product']}: {k} = {x[k]}"
    assert abs(x["gflop"] - 2e-9 * x["m"] * x["n"] * x["k"]) < 1e-12, x
    assert x["best_gflops"] == max(x["onednn_gflops"], x["openblas_gflops"]), x
# The products of a layer y[rows,out] = x[rows,in] w^T, here mlp's first layer at batch 4.
fc1 = {x["product"]: (x["op"], x["m"], x["n"], x["k"]) for x in g if x["layers"] == "layers.1"}
assert fc1 == {"forward": ("NT", 4, 2048, 784), "backward-data": ("NN", 4, 784, 2048),
               "backward-weights": ("TN", 2048, 784, 4)}, fc1
# A convolution as its im2col GEMM: cnn's second conv, rows = 4 x 14 x 14, in = 32 x 9.
conv = [x for x in g if x["model"] == "cnn" and x["layers"] == "layers.3" and x["product"] == "forward"]
assert (conv[0]["rows"], conv[0]["in"], conv[0]["out"]) == (4 * 196, 288, 64), conv
m = d["memory"]
assert m["array_mib"] == 2
for name, counted, wa in (("triad", 3, 4), ("copy", 2, 3), ("read", 1, 1), ("update", 3, 3)):
    k = m[name]
    assert pos(k["gb_per_s"]) and pos(k["seconds"]), f"{name}: {k}"
    assert (k["streams_counted"], k["streams_with_write_allocate"]) == (counted, wa), name
    assert abs(k["gb_per_s_with_write_allocate"] / k["gb_per_s"] - wa / counted) < 1e-9, name
    assert abs(k["gb_per_s"] - counted * 2 * 2**20 / k["seconds"] * 1e-9) < 1e-6 * k["gb_per_s"], name
PY
)
check "dpt-limits JSON" $? "$why"
out=$("$bin/dpt-limits" --threads 0 2>&1)
[[ $? -ne 0 ]] && grep -q -- "--threads" <<<"$out"
check "dpt-limits refuses --threads 0" $? "$out"

"$bin/dpt-data" import-fashion-mnist "$work/fm.h5" >/dev/null || { echo "FAIL: dataset"; exit 1; }
out=$(cd "$work" && timeout 120 "$py" --needs json "$src/bench/roofline.py" --quick --markdown \
  --data "$work/fm.h5" --bin-dir "$bin" --json "$work/roofline.json" 2>&1)
check "roofline.py --quick runs" $? "$out"
echo "$out"
# Every phase, in the table of its model.
cnn_table=$(sed -n '/^### cnn/,/^### mlp/p' <<<"$out")
mlp_table=$(sed -n '/^### mlp/,$p' <<<"$out")
missing=""
for phase in "layers.0 Conv2d(1 -> 32, kernel 3, stride 1, padding 1, relu)" "layers.1 ReLU(fused)" \
             "layers.2 MaxPool2d(kernel 2, stride 2)" "layers.3 Conv2d(32 -> 64, kernel 3, stride 1, padding 1, relu)" \
             "layers.4 ReLU(fused)" "layers.5 MaxPool2d(kernel 2, stride 2)" \
             "layers.6 Conv2d(64 -> 64, kernel 3, stride 1, padding 1, relu)" "layers.7 ReLU(fused)" \
             "layers.8 Flatten" "layers.9 Linear(3136 -> 10)"; do
  for pass in forward backward; do
    grep -qF "| $phase $pass |" <<<"$cnn_table" || missing+=" [cnn $phase $pass]"
  done
done
grep -qF "| layers.0 Flatten forward |" <<<"$mlp_table" || missing+=" [mlp layers.0 Flatten forward]"
# Nothing runs backward under the first layer with parameters.
grep -qF "| layers.0 Flatten backward |" <<<"$mlp_table" && missing+=" [mlp: a Flatten backward row]"
for phase in "layers.1 Linear(784 -> 2048, relu)" "layers.2 ReLU(fused)" \
             "layers.3 Linear(2048 -> 2048, relu)" "layers.4 ReLU(fused)" \
             "layers.5 Linear(2048 -> 2048, relu)" "layers.6 ReLU(fused)" "layers.7 Linear(2048 -> 10)"; do
  for pass in forward backward; do
    grep -qF "| $phase $pass |" <<<"$mlp_table" || missing+=" [mlp $phase $pass]"
  done
done
for phase in optimizer "data wait" "wait for all-reduce" rest "**step**"; do
  for model in cnn mlp; do
    table=${model}_table
    grep -qF "| $phase |" <<<"${!table}" || missing+=" [$model $phase]"
  done
done
grep -q "^- mlp: step .* of the sgemm peak" <<<"$out" && grep -q "^- cnn: optimizer .* its memory floor" <<<"$out" ||
  missing+=" [summary lines]"
[[ -z "$missing" ]]
check "roofline table has every phase of cnn and mlp" $? "missing:$missing"
why=$("$py" --needs json - "$work/roofline.json" <<'PY' 2>&1
import json, sys
d = json.load(open(sys.argv[1]))
peak = [g for g in d["limits"]["sgemm"] if g["product"] == "square"][0]["best_gflops"]
triad = d["limits"]["memory"]["triad"]["gb_per_s"]
def phase(model, name):
    rows = [r for r in d["models"][model]["phases"] if r["phase"].startswith(name)]
    assert len(rows) == 1, f"{model} {name}: {len(rows)} rows"
    return rows[0]
close = lambda a, b: abs(a - b) <= 1e-9 * max(abs(a), abs(b))
# Each limit: the better of the runs before and after training.
for i, g in enumerate(d["limits"]["sgemm"]):
    a, b = d["limits_before"]["sgemm"][i], d["limits_after"]["sgemm"][i]
    assert g["best_gflops"] == max(a["best_gflops"], b["best_gflops"]), (g, a, b)
assert triad == max(d["limits_before"]["memory"]["triad"]["gb_per_s"],
                    d["limits_after"]["memory"]["triad"]["gb_per_s"])
# Work from the shapes at batch 128.
assert close(phase("mlp", "layers.3 Linear(2048 -> 2048, relu) forward")["gflop"], 2e-9 * 128 * 2048 * 2048)
# mlp's first Linear is its first layer with parameters: no input gradient either.
assert close(phase("mlp", "layers.1 Linear(784 -> 2048, relu) backward")["gflop"], 2e-9 * 128 * 784 * 2048)
# The first layer has no input gradient: backward is the weights product alone.
conv0 = 2e-9 * 128 * 28 * 28 * 9 * 32
assert close(phase("cnn", "layers.0 Conv2d(1 -> 32, kernel 3, stride 1, padding 1, relu) forward")["gflop"], conv0)
assert close(phase("cnn", "layers.0 Conv2d(1 -> 32, kernel 3, stride 1, padding 1, relu) backward")["gflop"], conv0)
assert close(phase("cnn", "layers.3 Conv2d(32 -> 64, kernel 3, stride 1, padding 1, relu) backward")["gflop"],
             2 * 2e-9 * 128 * 14 * 14 * 32 * 9 * 64)
# Pooling 128x32x28x28 -> 14x14: input and output at 4 bytes, a 1-byte argmax per output.
pool = 4 * 128 * 32 * 784 + 5 * 128 * 32 * 196
assert close(phase("cnn", "layers.2 MaxPool2d(kernel 2, stride 2) forward")["mbytes"], pool / 1e6)
# SGD with momentum: 5 x 4 bytes per parameter.
mlp_params = 784 * 2048 + 2048 + 2 * (2048 * 2048 + 2048) + 2048 * 10 + 10
assert d["models"]["mlp"]["summary"]["parameters"] == mlp_params
opt = phase("mlp", "optimizer")
assert close(opt["mbytes"], 20 * mlp_params / 1e6), opt
assert close(opt["floor_ms"], 20 * mlp_params / (triad * 1e9) * 1e3), opt
s = d["models"]["mlp"]["summary"]
assert close(s["optimizer_over_floor"], opt["ms"] / opt["floor_ms"]), s
assert s["cpu_gemm"]["backward_data"] in ("onednn", "openblas"), s["cpu_gemm"]
assert close(s["optimizer_working_set_mb"], 3 * 4 * mlp_params / 1e6), s
# Rates and shares follow from time and work.
fc = phase("mlp", "layers.5 Linear(2048 -> 2048, relu) forward")
assert close(fc["gflops"], fc["gflop"] / (fc["ms"] * 1e-3)) and fc["peak_gflops"] == peak, fc
gemm = [r for r in d["models"]["mlp"]["phases"] if "gflop" in r]
assert len(gemm) == 8, len(gemm)
assert close(s["gemm_gflop"], sum(r["gflop"] for r in gemm)), s
assert close(s["gemm_share_of_peak"], s["gemm_gflop"] / (s["gemm_ms"] * 1e-3) / peak), s
PY
)
check "roofline JSON: work, rates and shares" $? "$why"

# --cap-isa avx2 reaches both programs: dpt-limits and train's kernels run AVX2 code.
if grep -qw avx2 /proc/cpuinfo; then
  out=$(cd "$work" && timeout 120 "$py" --needs json "$src/bench/roofline.py" --quick --cap-isa avx2 \
    --models mlp --data "$work/fm.h5" --bin-dir "$bin" --json "$work/capped.json" 2>&1)
  check "roofline.py --quick --cap-isa avx2 runs" $? "$out"
  why=$("$py" --needs json - "$work/capped.json" <<'PY' 2>&1
import json, sys
d = json.load(open(sys.argv[1]))
assert d["limits"]["onednn_isa"] == "avx2", d["limits"]["onednn_isa"]
assert d["limits"]["openblas_core"] == "Haswell", d["limits"]["openblas_core"]
assert d["models"]["mlp"]["summary"]["cpu_gemm"]["isa"] == "avx2", d["models"]["mlp"]["summary"]
assert "ISA capped to AVX2" in d["caption"], d["caption"]
PY
)
  check "roofline --cap-isa avx2: limits and train on AVX2 code" $? "$why"
fi
exit $((failures > 0))
