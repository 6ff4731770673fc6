#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The cost of exact mode (`train --exact`): `cnn` and `mlp` on 1 and 2 ranks (1 thread each,
through launch/dptrun), global batch --batch, SGD with momentum, no evaluation, in three modes:

  default      the float all-reduce of each rank's gradients (one backward over its share)
  micro-batch  the same with --micro-batch equal to the shard size: the batch computed in
               shards of that size, accumulated in float and all-reduced; against `default` it
               isolates the cost of computing in small shards
  exact        --exact --shard-size: thread-invariant kernels, every shard into a gradient
               buffer of its own, summed in 64-bit fixed point; against `micro-batch` it is the
               cost of exactness (the kernels show in forward/backward, the sum in comm)

    scripts/python bench/exact_cost.py --data data/fmnist.h5

The machine is shared and noisy, so each repeat runs the three modes back to back (in an order
that rotates from one repeat to the next) and a mode's ratio is the median over repeats of its
samples/s over the default's samples/s in the same repeat. samples/s and the step split come from
the run's summary (the steps after the first 5); the split is the median over repeats, in ms per
step: forward (with the loss), backward, comm (all-reduces or exact sums, where they ran), exposed
comm (the wait after backward) and optimizer.
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

from machine import cpu_description

HERE = os.path.dirname(os.path.abspath(__file__))
MODES = ("default", "micro-batch", "exact")
SPLIT = ("forward", "backward", "comm_total", "comm_exposed", "optimizer")


def mode_flags(mode, shard_size):
    if mode == "default":
        return []
    if mode == "micro-batch":
        return ["--micro-batch", str(shard_size)]
    return ["--exact", "--shard-size", str(shard_size)]


def run(args, model, ranks, mode):
    with tempfile.TemporaryDirectory() as tmp:
        metrics = os.path.join(tmp, "m.jsonl")
        cmd = [os.path.join(HERE, "..", "launch", "dptrun"), "-n", str(ranks),
               os.path.join(args.bin_dir, "train"), "--data", args.data, "--model", model,
               "--steps", str(args.steps), "--batch-size", str(args.batch), "--threads", "1",
               "--optimizer", "sgd", "--lr", "0.01", "--momentum", "0.9", "--eval=false",
               "--quiet", "--metrics", metrics] + mode_flags(mode, args.shard_size)
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        with open(metrics) as f:
            summary = [json.loads(line) for line in f if line.strip()][-1]
        if summary.get("event") != "summary" or summary.get("world_size") != ranks or \
                summary.get("exact") != (mode == "exact") or \
                summary.get("shard_size", 0) != (args.shard_size if mode == "exact" else 0):
            raise SystemExit(f"expected the summary of a {ranks}-rank {mode} job as the last line of "
                             f"the metrics, found {summary}")
        return summary


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.path.join(HERE, "..", "data", "fmnist.h5"))
    p.add_argument("--bin-dir", default=os.path.join(HERE, "..", "build", "bin"))
    p.add_argument("--models", nargs="+", default=["cnn", "mlp"])
    p.add_argument("--ranks", nargs="+", type=int, default=[1, 2])
    p.add_argument("--batch", type=int, default=128, help="global batch")
    p.add_argument("--shard-size", type=int, default=32,
                   help="exact mode's shard size, and the micro-batch of the micro-batch mode "
                        "(32: train's default shard size for batch 128)")
    p.add_argument("--steps", type=int, default=30, help="steps per run (the summary leaves out 5)")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    for ranks in args.ranks:
        if args.batch % (ranks * args.shard_size) != 0:
            raise SystemExit(f"--batch {args.batch} must be a multiple of ranks x --shard-size "
                             f"({ranks} x {args.shard_size})")

    runs = {}  # (model, ranks, mode) -> [summary per repeat]
    started = time.time()
    for repeat in range(args.repeats):
        for model in args.models:
            for ranks in args.ranks:
                shift = repeat % len(MODES)
                for mode in MODES[shift:] + MODES[:shift]:
                    s = run(args, model, ranks, mode)
                    runs.setdefault((model, ranks, mode), []).append(s)
                    print(f"repeat {repeat + 1}/{args.repeats}: {model} {ranks} rank(s) {mode}: "
                          f"{s['samples_per_sec']:.1f} samples/s", flush=True)

    lines = [f"Cost of exact mode: 1 thread per rank, global batch {args.batch}, shards of "
             f"{args.shard_size}, SGD momentum 0.9, {args.steps} steps (first 5 left out), "
             f"{args.repeats} repeats with the modes alternating ({time.strftime('%Y-%m-%d')}, "
             f"{time.time() - started:.0f} s); {cpu_description()}", "",
             "| model | ranks | mode | samples/s, median (min-max) | ratio to default | "
             "forward / backward / comm / exposed comm / optimizer, ms per step |",
             "|---|---:|---|---:|---:|---|"]
    for model in args.models:
        for ranks in args.ranks:
            base = [s["samples_per_sec"] for s in runs[(model, ranks, "default")]]
            for mode in MODES:
                summaries = runs[(model, ranks, mode)]
                sps = [s["samples_per_sec"] for s in summaries]
                ratio = statistics.median(a / b for a, b in zip(sps, base))
                split = " / ".join(f"{statistics.median(s['step_ms'][k] for s in summaries):.1f}"
                                   for k in SPLIT)
                lines.append(f"| {model} | {ranks} | {mode} | {statistics.median(sps):.1f} "
                             f"({min(sps):.0f}-{max(sps):.0f}) | {ratio:.3f} | {split} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
