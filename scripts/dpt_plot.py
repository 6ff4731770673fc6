#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Loss and accuracy curves from `train --metrics` files.

    scripts/dpt-plot run.jsonl curves.png
    scripts/dpt-plot a.jsonl b.jsonl --labels "1 rank" "2 ranks" -o compare.png

Top: training loss per step (thin) and its moving average (thick), test loss at each evaluation
(markers). Bottom: test accuracy per evaluation. Several files are overlaid, one colour each.
Needs matplotlib (Debian's python3-matplotlib: scripts/install-deps.sh); the scripts/dpt-plot
wrapper runs this file with an interpreter that has it (scripts/python).
"""
import argparse
import json
import sys


def read_metrics(path):
    steps, losses, evals = [], [], []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError as e:
                raise SystemExit(f"dpt-plot: {path}:{number}: not JSON ({e})")
            if event.get("event") == "step":
                steps.append(event["step"])
                losses.append(event["loss"])
            elif event.get("event") == "eval":
                evals.append((event["step"], event["loss"], event["accuracy"]))
    if not steps and not evals:
        raise SystemExit(f"dpt-plot: {path}: no step or eval events (is it a train --metrics file?)")
    return steps, losses, evals


def moving_average(values, window):
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def main():
    p = argparse.ArgumentParser(prog="dpt-plot", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", help="metrics files; with two positional files and no -o, "
                   "the second is the output PNG")
    p.add_argument("-o", "--out", help="output PNG")
    p.add_argument("--labels", nargs="+", help="one legend label per metrics file")
    p.add_argument("--window", type=int, default=20, help="moving-average window in steps")
    args = p.parse_args()
    files, out = args.files, args.out
    if out is None:
        if len(files) < 2 or not files[-1].endswith(".png"):
            p.error("give the output PNG as the last argument or with -o")
        files, out = files[:-1], files[-1]
    labels = args.labels or files
    if len(labels) != len(files):
        p.error(f"{len(labels)} labels for {len(files)} files")

    try:
        import matplotlib
    except ImportError as e:
        raise SystemExit(f"dpt-plot: {sys.executable} cannot import matplotlib ({e}); run scripts/dpt-plot, "
                         "which finds an interpreter that has it, or set DPT_PYTHON to one")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    for i, (path, label) in enumerate(zip(files, labels)):
        color = f"C{i}"
        steps, losses, evals = read_metrics(path)
        if steps:
            top.plot(steps, losses, color=color, alpha=0.25, linewidth=0.8)
            top.plot(steps, moving_average(losses, args.window), color=color, linewidth=2,
                     label=f"{label}: training loss")
        if evals:
            es, el, ea = zip(*evals)
            top.plot(es, el, "o--", color=color, label=f"{label}: test loss")
            bottom.plot(es, ea, "o-", color=color, label=f"{label}: test accuracy")
            for s, a in zip(es, ea):
                bottom.annotate(f"{a:.4f}", (s, a), textcoords="offset points", xytext=(0, 6),
                                ha="center", fontsize=8, color=color)
    top.set_ylabel("loss (mean over the batch)")
    top.set_yscale("log")
    top.legend(fontsize=8)
    top.grid(alpha=0.3)
    bottom.set_xlabel("optimizer step")
    bottom.set_ylabel("test accuracy")
    bottom.grid(alpha=0.3)
    if bottom.lines:
        bottom.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"dpt-plot: wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
