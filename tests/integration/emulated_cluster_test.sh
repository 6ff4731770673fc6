#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# launch/emulated-cluster: 2 emulated nodes (network namespaces behind rate-limited links) really
# talk over the limited links (dpt-bench allreduce at 200 Mbit/s = 0.025 GB/s stays under it), train
# runs across them, and every namespace and interface it made is gone afterwards, also after a
# failing command. Skipped (exit 77) when not root or network namespaces cannot be created.
# Usage: emulated_cluster_test.sh SOURCE_DIR BIN_DIR
set -uo pipefail
src=${1:?usage: emulated_cluster_test.sh SOURCE_DIR BIN_DIR}
bin=${2:?usage: emulated_cluster_test.sh SOURCE_DIR BIN_DIR}
ec="$src/launch/emulated-cluster"
source "$(dirname "$0")/summary.sh"

if [[ $(id -u) -ne 0 ]]; then
  echo "SKIP: emulated_cluster_test needs root (network namespaces, bridge, veth, tc)"; exit 77
fi
probe="dptcprobe$$"
if ! ip netns add "$probe" 2>/dev/null; then
  echo "SKIP: 'ip netns add' fails here (no network namespaces in this container?)"; exit 77
fi
ip netns del "$probe"

failures=0
check() {  # check NAME CONDITION-STATUS DETAIL
  if [[ $2 -eq 0 ]]; then echo "ok   $1"; else echo "FAIL $1: $3"; failures=$((failures + 1)); fi
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ours() {  # namespaces and interfaces whose names start with dptc (this script's launcher's prefix)
  { ip netns list | awk '{ print $1 }'; ip -o link show | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }'; } |
    grep '^dptc' | sort
}
before=$(ours)
# leftovers PREFIX: whatever of PREFIX (from the launcher's "prefix dptc<PID>," line) remains.
prefix_of() { sed -n 's/^emulated-cluster: prefix \(dptc[0-9]*\),.*/\1/p' <<<"$1" | head -1; }
leftovers() {
  [[ -n "$1" ]] || { echo "(no prefix line)"; return; }
  { ip netns list; ip -o link show; } | grep "$1" || true
}

# Options and root: --help, bad options, and the refusal without root.
out=$("$ec" --help 2>&1); rc=$?
[[ $rc -eq 0 ]] && grep -q -- '--ranks-per-node' <<<"$out"
check "--help" $? "exit $rc: $out"
out=$("$ec" --nodes 0 -- true 2>&1); rc=$?
[[ $rc -eq 2 ]] && grep -q -- '--nodes expects' <<<"$out"
check "bad --nodes rejected" $? "exit $rc: $out"
out=$("$ec" --rate fast -- true 2>&1); rc=$?
[[ $rc -eq 2 ]] && grep -q -- '--rate expects' <<<"$out"
check "bad --rate rejected" $? "exit $rc: $out"
if command -v setpriv >/dev/null; then
  out=$(setpriv --reuid 65534 --regid 65534 --clear-groups "$ec" --nodes 2 -- true 2>&1); rc=$?
  [[ $rc -eq 2 ]] && grep -q 'needs root' <<<"$out"
  check "refuses without root" $? "exit $rc: $out"
fi

# The links are the bottleneck: at 200 Mbit/s (0.025 GB/s) the 16 MB all-reduce's bus bandwidth
# (= algbw for 2 ranks: each rank sends and receives the whole message once) is below 0.03 GB/s,
# where shared memory on this machine gives several GB/s.
out=$(timeout 180 "$ec" --nodes 2 --ranks-per-node 1 --rate 200mbit -- "$bin/dpt-bench" allreduce \
      --min-bytes 1048576 --max-bytes 16777216 --seconds 0.2 2>&1); rc=$?
echo "$out"
busbw=$(awk '$1 == 16777216 && NF >= 11 { print $7 }' <<<"$out")
[[ $rc -eq 0 && -n "$busbw" ]] && grep -q '2 rank(s), 2 node(s)' <<<"$out" &&
  awk -v b="$busbw" 'BEGIN { exit !(b < 0.03 && b > 0.005) }'
check "allreduce over 2 nodes at 200mbit: busbw(16 MB) = ${busbw:-?} GB/s in (0.005, 0.03)" $? "exit $rc"
prefix=$(prefix_of "$out")
left=$(leftovers "$prefix")
[[ -z "$left" ]]
check "nothing of ${prefix:-?} left after dpt-bench" $? "$left"

# Training across 2 nodes.
data="$src/data/fmnist.h5"
if [[ ! -r "$data" ]]; then
  data="$work/fm.h5"
  "$bin/dpt-data" import-fashion-mnist "$data" >/dev/null
fi
out=$(timeout 180 "$ec" --nodes 2 --rate 1gbit -- "$bin/train" --data "$data" --model mlp --steps 5 \
      --threads 1 --eval=false --quiet --metrics "$work/metrics.jsonl" 2>&1); rc=$?
[[ $rc -eq 0 ]] && expect_world_size "$work/metrics.jsonl" 2
check "train mlp on 2 nodes" $? "exit $rc: $out"
prefix=$(prefix_of "$out")
left=$(leftovers "$prefix")
[[ -z "$left" ]]
check "nothing of ${prefix:-?} left after train" $? "$left"

# A failing command: its non-zero status comes back, and the cleanup still runs.
out=$(timeout 120 "$ec" --nodes 2 --rate 1gbit -- false 2>&1); rc=$?
[[ $rc -ne 0 && $rc -ne 124 ]]
check "failing command returns non-zero (got $rc)" $? "$out"
prefix=$(prefix_of "$out")
left=$(leftovers "$prefix")
[[ -n "$prefix" && -z "$left" ]]
check "nothing of ${prefix:-?} left after a failing command" $? "$left"

after=$(ours)
[[ "$after" == "$before" ]]
check "no dptc* namespace or interface added overall" $? "before: [$before] after: [$after]"

[[ $failures -eq 0 ]] && echo "emulated-cluster checks passed"
[[ $failures -eq 0 ]]
