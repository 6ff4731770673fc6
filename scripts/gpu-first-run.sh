#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The first run of dptrain on a GPU machine, from an unpacked kit (scripts/gpu-kit.sh): checks that
# every library resolves, prints nvidia-smi, runs the gpu test suites, trains `cnn` and `mlp` on
# the GPU and on the CPU from the same seed and compares their loss curves step by step, then runs
# `dpt-bench allreduce --device cuda` and `bench/compare_pytorch.py --device cuda`. Everything goes
# to LOG_DIR/first-run.log (plus LOG_DIR/loss-curves.tsv), ending with a summary of what passed.
#
# Usage: dptrain-gpu-kit/scripts/gpu-first-run.sh [--cpu-only] [--steps N] [--budget S] [LOG_DIR]
#   LOG_DIR     default: $OUT when set, else ./first-run-<UTC time>
#   --steps N   training steps of each loss-curve run (default 300)
#   --budget S  the whole run's time limit in seconds (default 450): every stage runs under a
#               timeout of at most what is left, and a stage that no longer fits is skipped
#   --cpu-only  leave out everything that needs a GPU (to try the kit on a machine without one)
# Exit status: 0 when no stage failed.
set -uo pipefail

cpu_only=0 steps=300 budget=450 log_dir=""
while (($#)); do
  case "$1" in
    --cpu-only) cpu_only=1; shift ;;
    --steps) steps=${2:?--steps needs a number}; shift 2 ;;
    --budget) budget=${2:?--budget needs seconds}; shift 2 ;;
    -h|--help) sed -n '9,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "gpu-first-run: unknown option '$1'" >&2; exit 2 ;;
    *) log_dir=$1; shift ;;
  esac
done
source "$(dirname "${BASH_SOURCE[0]}")/gpu-kit-env.sh"
if [[ ! -x "$DPT_KIT/libexec/train" || ! -f "$DPT_KIT/tests.tsv" ]]; then
  echo "gpu-first-run: $DPT_KIT is not an unpacked kit: make one with scripts/gpu-kit.sh" >&2
  exit 2
fi
log_dir=${log_dir:-${OUT:-$PWD/first-run-$(date -u +%Y%m%d-%H%M%S)}}
mkdir -p "$log_dir"
log_dir=$(cd "$log_dir" && pwd)
log="$log_dir/first-run.log"
work=$(mktemp -d "${TMPDIR:-/tmp}/dpt-first-run.XXXXXX")
export log_dir work  # read by the stages that are functions of this script
exec > >(tee "$log") 2>&1
tee_pid=$!

data="$DPT_KIT/data/fmnist-small.h5"
cores=$(nproc)
results=()  # "stage|verdict|seconds|note"
failed=0

# left: seconds of the budget still available for stages (10 kept for the summary).
left() { echo $((budget - SECONDS - 10)); }

# stage_limit CAP: the timeout for a stage that would like CAP seconds; 0 when under 15 are left.
stage_limit() {
  local l c=$1
  l=$(left)
  ((l < 15)) && { echo 0; return; }
  ((c > l)) && c=$l
  echo "$c"
}

record() {  # record STAGE VERDICT SECONDS NOTE
  results+=("$1|$2|$3|$4")
  [[ "$2" == FAIL ]] && failed=1
  echo "== $1: $2 (${3} s)${4:+  $4}"
}

# run_stage NAME CAP COMMAND...: runs COMMAND under a timeout of CAP seconds (less when less of
# the budget is left) and records PASS, FAIL, SKIP (no time left to start it) or STOP (stopped by
# the end of the budget rather than by its own limit; not a failure).
run_stage() {
  local name=$1 cap=$2 limit start rc
  shift 2
  limit=$(stage_limit "$cap")
  if ((limit == 0)); then
    record "$name" SKIP 0 "out of time budget ($budget s)"
    return 1
  fi
  echo
  echo "== $name (limit ${limit} s): $*"
  start=$SECONDS
  if declare -F "$1" >/dev/null; then
    # A function of this script: timeout runs programs only, so in a bash that has it.
    timeout -k 10 "$limit" bash -c "$(declare -f with_kit_libs "$1"); $1"
  else
    timeout -k 10 "$limit" "$@"
  fi
  rc=$?
  if ((rc == 0)); then
    record "$name" PASS $((SECONDS - start)) ""
  elif ((rc == 124 || rc == 137)) && ((limit < cap)); then
    record "$name" STOP $((SECONDS - start)) "stopped at the end of the time budget ($budget s)"
  elif ((rc == 124 || rc == 137)); then
    record "$name" FAIL $((SECONDS - start)) "timed out after ${limit} s"
  else
    record "$name" FAIL $((SECONDS - start)) "exit $rc"
  fi
  return $rc
}

skip() { record "$1" SKIP 0 "$2"; }

with_kit_libs() {  # the kit's library path for one command, never for this shell
  LD_LIBRARY_PATH="$DPT_KIT_LD_PATH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$@"
}

# A python3 that has torch (PyTorch's env on the lent machines; Debian's python3 elsewhere).
find_torch_python() {
  local py
  for py in "${DPT_KIT_PYTHON:-}" "$(command -v python3 || true)" /opt/torch/.venv/bin/python3 \
            /usr/bin/python3; do
    [[ -n "$py" && -x "$py" ]] && "$py" -c 'import torch, h5py' 2>/dev/null && { echo "$py"; return; }
  done
}

echo "dptrain GPU first run: $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(uname -n), $cores cores"
echo "kit: $DPT_KIT"
echo "log: $log"
sed 's/^/  /' "$DPT_KIT/MANIFEST.txt"
echo "host glibc: $(ldd --version 2>&1 | head -1)"
echo "library path of the kit's binaries: $DPT_KIT_LD_PATH"
seen=" "
for py in "$(command -v python3 || true)" /opt/torch/.venv/bin/python3; do
  [[ -n "$py" && -x "$py" && "$seen" != *" $(readlink -f "$py") "* ]] || continue
  seen+="$(readlink -f "$py") "
  echo "nvidia wheels of $py:"
  "$py" - <<'EOF' 2>/dev/null
from importlib import metadata
for name, version in sorted({(d.metadata["Name"], d.version) for d in metadata.distributions()
                             if (d.metadata["Name"] or "").lower().startswith("nvidia")}):
    print(f"  {name} {version}")
EOF
done

# --- 1. Every library of every binary resolves; where the CUDA ones come from.
check_libraries() {
  local exe bad=0 missing need have
  # glibc is the host's: it must be at least as new as the newest symbol version the kit names.
  need=$(grep -o 'GLIBC_[0-9.]*' "$DPT_KIT/MANIFEST.txt" | head -1 | sed 's/GLIBC_//')
  have=$(ldd --version 2>&1 | head -1 | grep -o '[0-9][0-9.]*$')
  if [[ -n "$need" && -n "$have" ]] &&
     [[ "$(printf '%s\n' "$need" "$have" | sort -V | tail -1)" != "$have" ]]; then
    echo "the kit needs glibc $need, this host has $have: make the kit on an older system"
    bad=1
  fi
  for exe in "$DPT_KIT"/libexec/* "$DPT_KIT"/tests/*; do
    missing=$(with_kit_libs ldd "$exe" | grep 'not found')
    if [[ -n "$missing" ]]; then
      echo "$(basename "$exe"): $missing"
      bad=1
    fi
  done
  echo "libraries of train, and where they resolve:"
  with_kit_libs ldd "$DPT_KIT/libexec/train" | sed 's/^/  /'
  ((bad == 0))
}
if ! run_stage libraries 60 check_libraries; then
  echo "gpu-first-run: some libraries are missing (above): set DPT_KIT_CUDA_LIBS to the folders" \
       "holding them"
fi

# --- 2. The GPU.
if ((cpu_only)); then
  skip nvidia-smi "--cpu-only"
else
  run_stage nvidia-smi 30 nvidia-smi
fi

# --- 3. CPU reference runs, in the background while the GPU is busy: half the cores.
train_args=(--data "$data" --batch-size 128 --steps "$steps" --epochs 1000 --seed 0
            --optimizer adamw --lr 1e-3 --eval=false --log-every 50)
cpu_threads=$(( cores > 2 ? cores / 2 : 1 ))
cpu_limit=$(stage_limit 300)
cpu_start=$SECONDS
(
  for model in cnn mlp; do
    if ((cpu_limit == 0)); then echo "out of time budget" >"$work/$model-cpu.out"; continue; fi
    timeout -k 10 "$cpu_limit" "$DPT_KIT/bin/train" "${train_args[@]}" --model "$model" \
      --device cpu --threads "$cpu_threads" --metrics "$work/$model-cpu.jsonl" \
      >"$work/$model-cpu.out" 2>&1
    echo $? >"$work/$model-cpu.rc"
  done
) &
cpu_pid=$!

# --- 4. The gpu test suites; a skip is a failure here.
if ((cpu_only)); then
  skip gpu-tests "--cpu-only"
else
  run_stage gpu-tests 240 env DPT_REQUIRE_GPU=1 "$DPT_KIT/scripts/gpu-kit-tests.sh" -L gpu \
    --verbose --skip-is-failure --timeout-cap 150
fi

# --- 5. train on the GPU.
for model in cnn mlp; do
  if ((cpu_only)); then
    skip "train-$model-cuda" "--cpu-only"
  else
    run_stage "train-$model-cuda" 90 "$DPT_KIT/bin/train" "${train_args[@]}" --model "$model" \
      --device cuda --metrics "$work/$model-cuda.jsonl"
  fi
done
# Mixed precision on the GPU: bf16/fp16 GEMMs on cuBLASLt and convolutions on cuDNN, both on
# tensor cores (Note [Half and TF32 GEMMs], Note [Half convolutions on cuDNN]), the fp16 loss
# scale, and fp32 under --tf32. Each summary line (samples/s next to the fp32 runs above, loss
# scale, overflow steps) goes into the log.
for variant in "mlp bf16" "mlp fp16" "cnn bf16" "cnn fp32 --tf32"; do
  read -r model precision extra <<<"$variant"
  name="train-$model-$precision${extra:+-tf32}-cuda"
  if ((cpu_only)); then
    skip "$name" "--cpu-only"
  else
    run_stage "$name" 90 "$DPT_KIT/bin/train" "${train_args[@]}" --model "$model" \
      --device cuda --precision "$precision" ${extra:+"$extra"} --metrics "$work/$name.jsonl"
    tail -1 "$work/$name.jsonl" 2>/dev/null | cut -c1-400 || true
  fi
done

# --- 6. The CPU runs' results, and the curves compared.
wait "$cpu_pid"
for model in cnn mlp; do
  echo
  echo "== train-$model-cpu ($cpu_threads threads): output"
  cat "$work/$model-cpu.out"
  rc=$(cat "$work/$model-cpu.rc" 2>/dev/null || echo 1)
  case $rc in
    0) record "train-$model-cpu" PASS $((SECONDS - cpu_start)) "" ;;
    124|137) record "train-$model-cpu" FAIL $((SECONDS - cpu_start)) "timed out after ${cpu_limit} s" ;;
    *) record "train-$model-cpu" FAIL $((SECONDS - cpu_start)) "exit $rc" ;;
  esac
done

# compare_curves: per model, the step losses of the CPU and the GPU run side by side in
# loss-curves.tsv, and the verdict. The same seed, data order and model give the same first
# loss up to summation order (|diff| <= 1e-3); the curves may drift apart afterwards (cuDNN and
# oneDNN add in different orders and training amplifies it), but both must learn (mean of the
# last 20 steps under 70% of the first loss) and end close (those means within 0.1).
compare_curves() {
  python3 - "$work" "$log_dir/loss-curves.tsv" <<'EOF'
import json, os, sys
work, tsv = sys.argv[1:]
def losses(path):
    with open(path) as f:
        rows = [json.loads(l) for l in f if '"step"' in l]
    return {r["step"]: r["loss"] for r in rows if r.get("event") == "step"}
ok, curves = True, {}
for model in ("cnn", "mlp"):
    cpu_path, gpu_path = (os.path.join(work, f"{model}-{d}.jsonl") for d in ("cpu", "cuda"))
    if not (os.path.exists(cpu_path) and os.path.exists(gpu_path)):
        print(f"{model}: no curve to compare (a run failed)"); ok = False; continue
    cpu, gpu = losses(cpu_path), losses(gpu_path)
    steps = sorted(set(cpu) & set(gpu))
    if not steps:
        print(f"{model}: no common steps"); ok = False; continue
    curves[model] = (cpu, gpu)
    diff = {s: abs(cpu[s] - gpu[s]) for s in steps}
    worst = max(steps, key=lambda s: diff[s])
    first = steps[0]
    tail = steps[-20:]
    mean_cpu = sum(cpu[s] for s in tail) / len(tail)
    mean_gpu = sum(gpu[s] for s in tail) / len(tail)
    print(f"{model}: {len(steps)} steps; step {first}: cpu {cpu[first]:.6f} gpu {gpu[first]:.6f} "
          f"|diff| {diff[first]:.2e}; max |diff| {diff[worst]:.3e} at step {worst} "
          f"(cpu {cpu[worst]:.4f} gpu {gpu[worst]:.4f}); mean |diff| "
          f"{sum(diff.values()) / len(diff):.4f}; last {len(tail)} steps mean cpu {mean_cpu:.4f} "
          f"gpu {mean_gpu:.4f}")
    for k in (1, 2, 5, 10, 20, 50, 100, 200):
        if k <= len(steps):
            window = steps[:k]
            print(f"    max |diff| over the first {k:3d} steps: {max(diff[s] for s in window):.3e}")
    checks = [(diff[first] <= 1e-3, "first losses agree within 1e-3"),
              (mean_cpu < 0.7 * cpu[first] and mean_gpu < 0.7 * gpu[first], "both learn"),
              (abs(mean_cpu - mean_gpu) <= 0.1, "the last 20 steps' means within 0.1")]
    for good, what in checks:
        print(f"    {'ok  ' if good else 'FAIL'} {what}")
        ok = ok and good
with open(tsv, "w") as f:
    names = [f"{m}_{d}" for m in curves for d in ("cpu", "cuda")]
    f.write("step\t" + "\t".join(names) + "\n")
    all_steps = sorted(set().union(*[set(c) | set(g) for c, g in curves.values()]))
    for s in all_steps:
        vals = [str(curve.get(s, "")) for c, g in curves.values() for curve in (c, g)]
        f.write(f"{s}\t" + "\t".join(vals) + "\n")
sys.exit(0 if ok else 1)
EOF
}
if ((cpu_only)); then
  skip loss-curves "--cpu-only"
else
  run_stage loss-curves 30 compare_curves
fi

# --- 7. All-reduce over NCCL (one rank: the NCCL path end to end, not a bandwidth figure).
if ((cpu_only)); then
  skip dpt-bench-cuda "--cpu-only"
else
  run_stage dpt-bench-cuda 60 "$DPT_KIT/bin/dpt-bench" allreduce --device cuda --seconds 0.2
fi

# --- 7b. Exact mode on the GPU: device exact sums (CUDA kernels + NCCL) against a world of one.
if ((cpu_only)); then
  skip verify-exact-cuda "--cpu-only"
else
  run_stage verify-exact-cuda 60 "$DPT_KIT/bin/train" verify --data "$data" --model cnn --exact \
    --steps 3 --batch-size 64 --device cuda --quiet
fi

# --- 8. dptrain beside PyTorch on the GPU.
if ((cpu_only)); then
  skip compare-pytorch "--cpu-only"
else
  torch_py=$(find_torch_python)
  if [[ -z "$torch_py" ]]; then
    record compare-pytorch FAIL 0 "no python3 with torch and h5py (set DPT_KIT_PYTHON)"
  else
    run_stage compare-pytorch 150 env PYTHONUNBUFFERED=1 "$torch_py" \
      "$DPT_KIT/bench/compare_pytorch.py" --device cuda --bin-dir "$DPT_KIT/bin" --data "$data" \
      --threads "$cores" --steps 60 --repeats 2
  fi
fi

# --- 9. The CPU suites that need nothing outside the kit (integration tests want Debian's
# Fashion-MNIST), if time is left.
run_stage cpu-tests 120 "$DPT_KIT/scripts/gpu-kit-tests.sh" -LE gpu -LE integration \
  --timeout-cap 120

echo
echo "== summary ($SECONDS s of a $budget s budget; log: $log)"
for r in "${results[@]}"; do
  IFS='|' read -r name verdict took note <<<"$r"
  printf '  %-18s %-4s %5s s  %s\n' "$name" "$verdict" "$took" "$note"
done
if ((failed)); then echo "gpu-first-run: FAILED"; else echo "gpu-first-run: all stages passed"; fi
rm -rf "$work"
exec >&- 2>&-
wait "$tee_pid" 2>/dev/null
exit "$failed"
