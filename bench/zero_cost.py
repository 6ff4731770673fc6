#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The sharded optimizer (`train --zero 1`) against the unsharded one: `mlp` (and `cnn`) with
AdamW on 2 ranks (1 thread each, through launch/dptrun), global batch --batch, no evaluation,
the two modes alternating within each repeat (bench/mode_cost.py):

  unsharded   --zero 0: every rank all-reduces the gradients and keeps the whole AdamW state
  zero 1      --zero 1: a reduce-scatter of the gradients, AdamW on the rank's range, an
              all-gather of the parameters (Note [Sharded optimizer] in nn/parallel/data_parallel.h)

Reported: samples/s and its ratio, the step split, and per rank the optimizer state (the
summary's optimizer_state_bytes) and the process's peak resident set (peak_rss_bytes).

    scripts/python bench/zero_cost.py --data data/fmnist.h5
"""
import argparse
import statistics
import time

import mode_cost

MODES = [("unsharded", ["--zero", "0"]), ("zero 1", ["--zero", "1"])]


def memory_table(args, runs):
    lines = ["", "| model | ranks | mode | optimizer state per rank, MB | peak RSS per rank, MB (median) |",
             "|---|---:|---|---|---|"]
    for model in args.models:
        for ranks in args.ranks:
            for name, _ in MODES:
                summaries = runs[(model, ranks, name)]
                state = ", ".join(f"{b / 1e6:.2f}" for b in summaries[0]["optimizer_state_bytes"])
                rss = ", ".join(f"{statistics.median(s['peak_rss_bytes'][r] for s in summaries) / 1e6:.0f}"
                                for r in range(ranks))
                lines.append(f"| {model} | {ranks} | {name} | {state} | {rss} |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode_cost.add_common_arguments(p, ranks=(2,), steps=60, repeats=5)
    p.set_defaults(models=["mlp"], batch=256, optimizer="adamw")
    args = p.parse_args()
    started = time.time()
    runs = mode_cost.measure(args, MODES)
    print(mode_cost.table(args, MODES, runs, "Sharded optimizer (--zero 1)", started))
    print(memory_table(args, runs))


if __name__ == "__main__":
    main()
