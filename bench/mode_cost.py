# SPDX-License-Identifier: MIT
"""Shared by the cost benchmarks (exact_cost.py, reliability_cost.py): `train` runs of the
reference models in several modes (extra flags each), interleaved so that machine noise hits
every mode alike, and a table of each mode's samples/s against the first mode's in the same
repeat.

Each repeat runs the modes back to back, in an order that rotates from one repeat to the next;
a mode's ratio is the median over repeats of its samples/s over the first mode's in the same
repeat. samples/s and the step split come from the run's summary (the steps after the first 5);
the split is the median over repeats, in ms per step.
"""
import json
import os
import statistics
import subprocess
import tempfile
import time

from machine import cpu_description

HERE = os.path.dirname(os.path.abspath(__file__))
SPLIT = ("forward", "backward", "comm_total", "comm_exposed", "optimizer")


def optimizer_flags(args):
    """SGD with momentum unless the benchmark sets args.optimizer to "adamw"."""
    if getattr(args, "optimizer", "sgd") == "adamw":
        return ["--optimizer", "adamw", "--lr", "0.001"]
    return ["--optimizer", "sgd", "--lr", "0.01", "--momentum", "0.9"]


def run(args, model, ranks, flags, check=None, env=None):
    """One job through launch/dptrun; returns its metrics summary. `check(summary)` may return an
    error text when the summary is not that of the job asked for; `env`: variables added to the
    job's environment."""
    with tempfile.TemporaryDirectory() as tmp:
        metrics = os.path.join(tmp, "m.jsonl")
        cmd = [os.path.join(HERE, "..", "launch", "dptrun"), "-n", str(ranks),
               os.path.join(args.bin_dir, "train"), "--data", args.data, "--model", model,
               "--steps", str(args.steps), "--batch-size", str(args.batch), "--threads", "1",
               "--eval=false", "--quiet", "--metrics", metrics] + optimizer_flags(args) + flags
        done = subprocess.run(cmd, capture_output=True, text=True,
                              env=dict(os.environ, **env) if env else None)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        with open(metrics) as f:
            summary = [json.loads(line) for line in f if line.strip()][-1]
        problem = None
        if summary.get("event") != "summary" or summary.get("world_size") != ranks:
            problem = f"expected the summary of a {ranks}-rank job"
        elif check is not None:
            problem = check(summary)
        if problem:
            raise SystemExit(f"{problem} as the last line of the metrics, found {summary}")
        return summary


def measure(args, modes, check=None):
    """modes: [(name, flags)] or [(name, flags, env)], the first the reference. Returns
    {(model, ranks, name): [summary]}."""
    runs = {}
    for repeat in range(args.repeats):
        for model in args.models:
            for ranks in args.ranks:
                shift = repeat % len(modes)
                for name, flags, *env in modes[shift:] + modes[:shift]:
                    s = run(args, model, ranks, flags,
                            (lambda summary, n=name: check(n, summary)) if check else None,
                            env[0] if env else None)
                    runs.setdefault((model, ranks, name), []).append(s)
                    print(f"repeat {repeat + 1}/{args.repeats}: {model} {ranks} rank(s) {name}: "
                          f"{s['samples_per_sec']:.1f} samples/s", flush=True)
    return runs


def table(args, modes, runs, title, started):
    names = [mode[0] for mode in modes]
    optimizer = "AdamW" if getattr(args, "optimizer", "sgd") == "adamw" else "SGD momentum 0.9"
    lines = [f"{title}: 1 thread per rank, global batch {args.batch}, {optimizer}, "
             f"{args.steps} steps (first 5 left out), {args.repeats} repeats with the modes "
             f"alternating ({time.strftime('%Y-%m-%d')}, {time.time() - started:.0f} s); "
             f"{cpu_description()}", "",
             f"| model | ranks | mode | samples/s, median (min-max) | ratio to {names[0]} | "
             "forward / backward / comm / exposed comm / optimizer, ms per step |",
             "|---|---:|---|---:|---:|---|"]
    for model in args.models:
        for ranks in args.ranks:
            base = [s["samples_per_sec"] for s in runs[(model, ranks, names[0])]]
            for name in names:
                summaries = runs[(model, ranks, name)]
                sps = [s["samples_per_sec"] for s in summaries]
                ratio = statistics.median(a / b for a, b in zip(sps, base))
                split = " / ".join(f"{statistics.median(s['step_ms'][k] for s in summaries):.1f}"
                                   for k in SPLIT)
                lines.append(f"| {model} | {ranks} | {name} | {statistics.median(sps):.1f} "
                             f"({min(sps):.0f}-{max(sps):.0f}) | {ratio:.3f} | {split} |")
    return "\n".join(lines)


def add_common_arguments(p, ranks=(1, 2), steps=30, repeats=3):
    p.add_argument("--data", default=os.path.join(HERE, "..", "data", "fmnist.h5"))
    p.add_argument("--bin-dir", default=os.path.join(HERE, "..", "build", "bin"))
    p.add_argument("--models", nargs="+", default=["cnn", "mlp"])
    p.add_argument("--ranks", nargs="+", type=int, default=list(ranks))
    p.add_argument("--batch", type=int, default=128, help="global batch")
    p.add_argument("--steps", type=int, default=steps, help="steps per run (the summary leaves out 5)")
    p.add_argument("--repeats", type=int, default=repeats)
