#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Data-parallel training across 2 emulated nodes (launch/emulated-cluster: network namespaces
# behind rate-limited links, 1 rank each) against the same ranks on one node (shared memory) and
# one rank: throughput with the all-reduce overlapped with backward or not, and per bucket size,
# with Open MPI's defaults and with its TCP transport's emulated put off ("no put", see
# launch/emulated-cluster). About 6 minutes at 40 steps.
#
#   bench/emulated_cluster.sh [--steps 40] [--batch 128] [--rate 1gbit] [--data data/fmnist.h5] [--bin build/bin]
#
# Model mlp (10.0 M parameters: 40 MB of gradients per step), global batch 128 (--batch), SGD momentum 0.9,
# lr 0.01, 1 thread per rank, no evaluation. Figures come from the metrics summary (the last line,
# event "summary", which leaves out the first 5 warm-up steps): samples_per_sec, step_ms.comm_total
# (all-reducing per step), step_ms.comm_exposed (the step's wait for it after backward) and overlap.
# Scaling efficiency = samples/s of N ranks / (N x samples/s of 1 rank). Needs root (the emulated
# nodes) and a python3 (reads the JSON; scripts/python finds one). Prints a markdown table with the
# exact commands.
set -euo pipefail

usage() { sed -n '3,17p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
batch=128
root=$(cd "$(dirname "$0")/.." && pwd)
steps=40
rate=1gbit
data="$root/data/fmnist.h5"
bin="$root/build/bin"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --steps) steps="$2"; shift 2 ;;
    --rate) rate="$2"; shift 2 ;;
    --batch) batch="$2"; shift 2 ;;
    --data) data="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "emulated_cluster.sh: unknown option '$1'" >&2; usage 2 >&2 ;;
  esac
done
[[ $(id -u) -eq 0 ]] || { echo "emulated_cluster.sh: needs root (launch/emulated-cluster)" >&2; exit 2; }
[[ -r "$data" ]] || { echo "emulated_cluster.sh: no dataset '$data' ($bin/dpt-data import-fashion-mnist $data)" >&2; exit 2; }
python=("$root/scripts/python" --needs json)
"${python[@]}" --which >/dev/null || exit 2

cd "$root"
rel() { local p=$1; echo "${p#"$root"/}"; }
ec=launch/emulated-cluster
dptrun=launch/dptrun
train=$(rel "$bin/train")
bench=$(rel "$bin/dpt-bench")
data_arg=$(rel "$data")
work=$(mktemp -d "${TMPDIR:-/tmp}/dpt-emu-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

common=(--data "$data_arg" --model mlp --batch-size "$batch" --optimizer sgd --momentum 0.9 --lr 0.01
        --threads 1 --steps "$steps" --eval=false --log-every 10 --quiet)

# quote WORD...: the words as a shell command line (quotes only where needed).
quote() {
  local w line="" plain='^[-A-Za-z0-9_./:=,+@%]+$'
  for w in "$@"; do if [[ "$w" =~ $plain ]]; then line+=" $w"; else line+=" '$w'"; fi; done
  echo "${line# }"
}
rate_bps=$(awk -v r="$rate" 'BEGIN { v = r + 0; u = r; sub(/^[0-9.]+/, "", u)
  m = (u == "kbit") ? 1e3 : (u == "mbit") ? 1e6 : (u == "gbit") ? 1e9 : (u == "tbit") ? 1e12 : 1; printf "%.0f", v * m }')
# The widest x86 vector ISA of this CPU, as every figure must name it.
isa() {
  if grep -qw avx512f /proc/cpuinfo; then echo "AVX-512"
  elif grep -qw avx2 /proc/cpuinfo; then echo "AVX2, no AVX-512"
  else uname -m; fi
}
rows=()
base_sps=""
n_run=0
# run LABEL RANKS LAUNCHER... :: TRAIN-ARGS...: one training run; appends a table row.
run() {
  local label=$1 ranks=$2; shift 2
  local launcher=()
  while [[ "$1" != "::" ]]; do launcher+=("$1"); shift; done
  shift
  n_run=$((n_run + 1))
  local metrics="$work/run$n_run.jsonl"
  local cmd=(${launcher[@]+"${launcher[@]}"} "$train" "${common[@]}" "$@" --metrics "$metrics")
  echo "[$n_run] $label: ${cmd[*]}" >&2
  local t0=$SECONDS rc=0
  "${cmd[@]}" > "$work/run$n_run.log" 2>&1 || rc=$?
  local shown
  shown=$(quote "${cmd[@]}")
  shown=${shown//"$metrics"/m.jsonl}
  if [[ $rc -ne 0 ]]; then
    tail -5 "$work/run$n_run.log" >&2
    rows+=("| $label | $ranks | | failed (exit $rc) | | | | | | \`$shown\` |")
    return
  fi
  local fields
  # The summary must come from one job of $ranks ranks (not $ranks separate one-rank jobs).
  if ! fields=$("${python[@]}" - "$metrics" "$ranks" <<'EOF'
import json, sys
summary = None
for line in open(sys.argv[1]):
    line = line.strip()
    if line:
        record = json.loads(line)
        if record.get("event") == "summary":
            summary = record
if summary is None or summary.get("world_size") != int(sys.argv[2]):
    sys.exit(f"{sys.argv[1]}: expected the summary of a {sys.argv[2]}-rank job, found {summary}")
s = summary.get("step_ms", {})  # one rank: no communication fields
print(summary["samples_per_sec"], 1000.0 * summary["batch_size"] / summary["samples_per_sec"],
      s.get("comm_total", 0.0), s.get("comm_exposed", 0.0), 100.0 * summary.get("overlap", 0.0),
      "/".join(f"{m:.1f}" for m in summary["bucket_mib"]))
EOF
); then
    rows+=("| $label | $ranks | | no summary of a $ranks-rank job | | | | | | \`$shown\` |")
    return
  fi
  local sps step total exposed overlap buckets
  read -r sps step total exposed overlap buckets <<<"$fields"
  [[ -n "$base_sps" ]] || base_sps=$sps
  local eff
  eff=$(awk -v s="$sps" -v b="$base_sps" -v n="$ranks" 'BEGIN { printf "%.0f%%", 100 * s / (n * b) }')
  # shellcheck disable=SC2016  # backquotes for markdown
  rows+=("$(printf '| %s | %s | %s | %.1f | %.0f | %.0f | %.0f | %.0f%% | %s | `%s` |' "$label" "$ranks" \
    "$buckets" "$sps" "$step" "$total" "$exposed" "$overlap" "$eff" "$shown")")
  echo "    $(printf '%.1f samples/s, %.0f ms/step, comm %.0f ms (exposed %.0f ms), %ds' \
    "$sps" "$step" "$total" "$exposed" $((SECONDS - t0)))" >&2
}

# The link check: 16 MB all-reduce bus bandwidth over the emulated links and in shared memory.
busbw() { awk '$1 == 16777216 && NF >= 11 { print $7 " GB/s (MPI_Allreduce " $11 ")" }'; }
link_cmd=("$ec" --nodes 2 --ranks-per-node 1 --rate "$rate" -- "$bench" allreduce --min-bytes 16777216 --max-bytes 16777216 --seconds 1)
shm_cmd=("$dptrun" -n 2 "$bench" allreduce --min-bytes 16777216 --max-bytes 16777216 --seconds 1)
noput_cmd=("$ec" --nodes 2 --ranks-per-node 1 --rate "$rate" --mpi-args "--mca btl_tcp_flags send,inplace,need-ack,need-csum,hetero-rdma"
           -- "$bench" allreduce --min-bytes 16777216 --max-bytes 16777216 --seconds 1)
link_bw=$("${link_cmd[@]}" 2>/dev/null | busbw)
noput_bw=$("${noput_cmd[@]}" 2>/dev/null | busbw)
shm_bw=$("${shm_cmd[@]}" 2>/dev/null | busbw)

run "1 rank" 1 ::
run "1 node x 2 ranks (shared memory)" 2 "$dptrun" -n 2 ::
emu=("$ec" --nodes 2 --ranks-per-node 1 --rate "$rate" --)
run "2 nodes x 1, overlap on (automatic buckets)" 2 "${emu[@]}" ::
run "2 nodes x 1, overlap off" 2 "${emu[@]}" :: --no-overlap
for mb in 1 5 25 100; do
  run "2 nodes x 1, overlap on, bucket $mb MiB" 2 "${emu[@]}" :: --bucket-mb "$mb"
done
# The same with Open MPI's TCP transport sending large messages in pipelined fragments instead of
# one emulated put (which makes the two directions of an exchange take turns; launch/emulated-cluster).
noput=("$ec" --nodes 2 --ranks-per-node 1 --rate "$rate"
       --mpi-args "--mca btl_tcp_flags send,inplace,need-ack,need-csum,hetero-rdma" --)
run "2 nodes x 1, no put, overlap on (automatic buckets)" 2 "${noput[@]}" ::
run "2 nodes x 1, no put, overlap off" 2 "${noput[@]}" :: --no-overlap
for mb in 1 5 25 100; do
  run "2 nodes x 1, no put, overlap on, bucket $mb MiB" 2 "${noput[@]}" :: --bucket-mb "$mb"
done

cat <<EOF
## mlp across 2 emulated nodes at $rate

mlp (10.0 M parameters, 40 MB of gradients per step), global batch $batch, SGD momentum 0.9, lr 0.01,
1 thread per rank, $steps steps (the first 5 are warm-up and not counted), on $(nproc) cores of
$(uname -n) ($(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1), $(isa)). Emulated nodes: launch/emulated-cluster
(one network namespace per node, tbf at $rate on each direction of its link, TCP between nodes).
Efficiency = samples/s / (ranks x samples/s of 1 rank). Times are per step; comm = all-reducing,
exposed = waited for after backward; overlap = share of comm hidden behind backward.

"no put": mpirun --mca btl_tcp_flags send,inplace,need-ack,need-csum,hetero-rdma (Open MPI's TCP
transport sends large messages as pipelined fragments, not as one emulated put queued ahead of the
replies to the peer, which makes the two directions of an exchange take turns).

Link check, 16 MB all-reduce bus bandwidth (link: $rate = $(awk -v r="$rate_bps" 'BEGIN { printf "%.3f", r / 8e9 }') GB/s):
- 2 emulated nodes, Open MPI defaults: ${link_bw:-?} \`${link_cmd[*]}\`
- 2 emulated nodes, no put: ${noput_bw:-?} \`$(quote "${noput_cmd[@]}")\`
- 1 node x 2 ranks (shared memory): ${shm_bw:-?} \`${shm_cmd[*]}\`

| run | ranks | buckets (MiB, all-reduce order) | samples/s | step ms | comm ms | exposed ms | overlap | efficiency | command |
|---|---|---|---|---|---|---|---|---|---|
EOF
printf '%s\n' "${rows[@]}"
echo
echo "(${SECONDS}s in all; m.jsonl stands for a temporary metrics file)"
