#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The cost of the collective deadline and of --check-collectives (docs/reliability.md):
`cnn` and `mlp` on 1 and 2 ranks (1 thread each, through launch/dptrun), global batch --batch,
SGD with momentum, no evaluation, in three modes:

  no deadline         --collective-timeout 0: the watchdog only answers other ranks
  deadline            the default (--collective-timeout 300): the watchdog also checks the
                      collective in flight every 50 ms
  check-collectives   the default plus --check-collectives: every collective is first compared
                      across ranks (one small all-gather each)

The flight recorder and the step check run in every mode (they cannot be switched off). Modes
alternate within each repeat (bench/mode_cost.py).

    scripts/python bench/reliability_cost.py --data data/fmnist.h5
"""
import argparse
import time

import mode_cost

MODES = [("no deadline", ["--collective-timeout", "0"]),
         ("deadline", []),
         ("check-collectives", ["--check-collectives"])]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode_cost.add_common_arguments(p, repeats=5)
    args = p.parse_args()
    started = time.time()
    runs = mode_cost.measure(args, MODES)
    print(mode_cost.table(args, MODES, runs, "Cost of the collective deadline", started))


if __name__ == "__main__":
    main()
