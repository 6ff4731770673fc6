#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Scaling of dptrain over ranks on this node: `cnn` and `mlp` at 1, 2 and 4 ranks (1 thread
each, through launch/dptrun), strong scaling (global batch fixed at --batch) and weak scaling (a
fixed --per-rank batch, so the global batch grows with the ranks). Writes a markdown table and a
PNG of throughput and efficiency.

    scripts/python --needs matplotlib bench/scaling.py --data data/fmnist.h5 --out docs/images/scaling.png

Efficiency is samples/s on N ranks over N times the 1-rank samples/s of the same per-step work
(strong: the same global batch; weak: the per-rank batch). More ranks than cores oversubscribe
(this machine has 2 cores, so 4 ranks share them: their efficiency shows that, not the network).
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

from machine import cpu_description
from requires import require

HERE = os.path.dirname(os.path.abspath(__file__))


def run(args, model, ranks, batch):
    with tempfile.TemporaryDirectory() as tmp:
        metrics = os.path.join(tmp, "m.jsonl")
        cmd = [os.path.join(HERE, "..", "launch", "dptrun"), "-n", str(ranks),
               os.path.join(args.bin_dir, "train"), "--data", args.data, "--model", model,
               "--steps", str(args.steps), "--batch-size", str(batch), "--threads", "1",
               "--optimizer", "sgd", "--lr", "0.01", "--momentum", "0.9", "--eval=false",
               "--quiet", "--metrics", metrics, "--device", args.device]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        with open(metrics) as f:
            summary = [json.loads(line) for line in f if line.strip()][-1]
        if summary.get("event") != "summary" or summary.get("world_size") != ranks:
            raise SystemExit(f"expected the summary of a {ranks}-rank job as the last line of the metrics, "
                             f"found {summary}")
        return summary["samples_per_sec"], summary


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.path.join(HERE, "..", "data", "fmnist.h5"))
    p.add_argument("--bin-dir", default=os.path.join(HERE, "..", "build", "bin"))
    p.add_argument("--models", nargs="+", default=["cnn", "mlp"])
    p.add_argument("--ranks", nargs="+", type=int, default=[1, 2, 4])
    p.add_argument("--batch", type=int, default=128, help="strong scaling: global batch")
    p.add_argument("--per-rank", type=int, default=64, help="weak scaling: batch per rank")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="scaling.png", help="PNG to write")
    p.add_argument("--device", default="cpu",
                   help="cpu (1 thread per rank) or cuda (rank r on GPU local_rank %% count)")
    args = p.parse_args()
    require("matplotlib")  # for the PNG at the end: fail now, not after the runs

    results = {}  # (model, mode, ranks) -> (median samples/s, overlap, exposed ms)
    for model in args.models:
        for mode in ("strong", "weak"):
            for ranks in args.ranks:
                batch = args.batch if mode == "strong" else args.per_rank * ranks
                runs = [run(args, model, ranks, batch) for _ in range(args.repeats)]
                sps = statistics.median(r[0] for r in runs)
                last = runs[-1][1]
                results[(model, mode, ranks)] = (sps, last.get("overlap"),
                                                 last["step_ms"].get("comm_exposed", 0.0))
                print(f"{model} {mode} {ranks} rank(s), batch {batch}: {sps:.1f} samples/s "
                      f"({[round(r[0]) for r in runs]})", flush=True)

    def efficiency(model, mode, ranks):
        base = results[(model, mode, 1)][0]
        return results[(model, mode, ranks)][0] / (ranks * base)

    lines = [f"Scaling on one node ({os.cpu_count()} cores), 1 thread per rank, SGD momentum 0.9, "
             f"{args.steps} steps (first 5 left out), median of {args.repeats} ({time.strftime('%Y-%m-%d')}); "
             f"strong: global batch {args.batch}; weak: {args.per_rank} per rank; {cpu_description()}", "",
             "| model | scaling | ranks | global batch | samples/s | efficiency | overlap | exposed comm ms/step |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for (model, mode, ranks), (sps, overlap, exposed) in results.items():
        batch = args.batch if mode == "strong" else args.per_rank * ranks
        ov = "" if overlap is None or ranks == 1 else f"{overlap:.0%}"
        lines.append(f"| {model} | {mode} | {ranks} | {batch} | {sps:.1f} | "
                     f"{efficiency(model, mode, ranks):.0%} | {ov} | {exposed:.1f} |")
    print("\n".join(lines))

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, model in enumerate(args.models):
        for mode, style in (("strong", "-"), ("weak", "--")):
            xs = args.ranks
            left.plot(xs, [results[(model, mode, r)][0] for r in xs], style + "o", color=f"C{i}",
                      label=f"{model} {mode}")
            right.plot(xs, [efficiency(model, mode, r) for r in xs], style + "o", color=f"C{i}",
                       label=f"{model} {mode}")
    left.set_xlabel("ranks")
    left.set_ylabel("samples/s")
    left.set_xticks(args.ranks)
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    right.set_xlabel("ranks")
    right.set_ylabel("scaling efficiency")
    right.set_xticks(args.ranks)
    right.axhline(1.0, color="grey", linewidth=0.8)
    right.set_ylim(0, 1.2)
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    fig.suptitle(f"dptrain on one node, {os.cpu_count()} cores ({args.ranks[-1]} ranks oversubscribe)")
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
