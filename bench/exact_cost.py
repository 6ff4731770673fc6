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
import time

import mode_cost

MODES = ("default", "micro-batch", "exact")


def mode_flags(mode, shard_size):
    if mode == "default":
        return []
    if mode == "micro-batch":
        return ["--micro-batch", str(shard_size)]
    return ["--exact", "--shard-size", str(shard_size)]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode_cost.add_common_arguments(p)
    p.add_argument("--shard-size", type=int, default=32,
                   help="exact mode's shard size, and the micro-batch of the micro-batch mode "
                        "(32: train's default shard size for batch 128)")
    args = p.parse_args()
    for ranks in args.ranks:
        if args.batch % (ranks * args.shard_size) != 0:
            raise SystemExit(f"--batch {args.batch} must be a multiple of ranks x --shard-size "
                             f"({ranks} x {args.shard_size})")
    modes = [(m, mode_flags(m, args.shard_size)) for m in MODES]

    def check(mode, summary):
        if summary.get("exact") != (mode == "exact") or \
                summary.get("shard_size", 0) != (args.shard_size if mode == "exact" else 0):
            return f"expected the summary of a {mode} job"
        return None

    started = time.time()
    runs = mode_cost.measure(args, modes, check)
    print(mode_cost.table(args, modes, runs, f"Cost of exact mode (shards of {args.shard_size})",
                          started))


if __name__ == "__main__":
    main()
