#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Draws a `train --timeline` trace as a PNG (one row per rank and track), for documents; for
interactive use open the JSON in https://ui.perfetto.dev or chrome://tracing.

    scripts/python --needs matplotlib bench/plot_timeline.py trace.json timeline.png [--steps 2-4]
"""
import argparse
import json

from requires import require

COLORS = {"forward": "#4C72B0", "backward": "#DD8452", "allreduce": "#C44E52", "optimizer": "#55A868",
          "data": "#8172B3", "checkpoint": "#937860"}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("trace")
    p.add_argument("out")
    p.add_argument("--steps", default="", help="first-last step to draw (default: all recorded)")
    args = p.parse_args()
    require("matplotlib")
    with open(args.trace) as f:
        events = [e for e in json.load(f)["traceEvents"] if e.get("ph") == "X"]
    window = None
    if args.steps:
        first, last = (int(x) for x in args.steps.split("-"))
        steps = [e for e in events if e["cat"] == "step" and first <= int(e["name"].split()[1]) <= last]
        if not steps:
            raise SystemExit(f"no steps {args.steps} in {args.trace}")
        window = (min(e["ts"] for e in steps), max(e["ts"] + e["dur"] for e in steps))
        events = [e for e in events if e["ts"] + e["dur"] >= window[0] and e["ts"] <= window[1]]
    origin = window[0] if window else min(e["ts"] for e in events)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    rows = sorted({(e["pid"], e["tid"]) for e in events})
    fig, ax = plt.subplots(figsize=(12, 0.55 * len(rows) + 1.6))
    for y, (pid, tid) in enumerate(rows):
        for e in events:
            if (e["pid"], e["tid"]) != (pid, tid) or e["cat"] == "step":
                continue
            # "wait for all-reduce" sits on the compute track: draw it hatched.
            hatch = "//" if e["cat"] == "allreduce" and tid == 0 else None
            ax.barh(y, e["dur"] / 1e3, left=(e["ts"] - origin) / 1e3, height=0.7,
                    color=COLORS.get(e["cat"], "grey"), edgecolor="black" if hatch else None,
                    linewidth=0.3, hatch=hatch)
        for e in events:
            if e["cat"] == "step" and (e["pid"], e["tid"]) == (pid, tid):
                ax.axvline((e["ts"] - origin) / 1e3, color="grey", linewidth=0.5, linestyle=":")
    if window:
        ax.set_xlim(0, (window[1] - origin) / 1e3)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"rank {pid} {'compute' if tid == 0 else 'communication'}" for pid, tid in rows])
    ax.invert_yaxis()
    ax.set_xlabel("ms")
    ax.legend(handles=[Patch(color=c, label=k) for k, c in COLORS.items()] +
              [Patch(facecolor=COLORS["allreduce"], hatch="//", edgecolor="black", label="wait for all-reduce")],
              ncol=7, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.25 if len(rows) > 2 else -0.4))
    ax.set_title("dptrain --timeline (dotted lines: step starts)")
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
