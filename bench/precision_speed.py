#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Training speed of `mlp` (and `cnn`) in fp32, bf16 and fp16 (`train --precision`): 1 rank
(through launch/dptrun) with 1 thread, global batch --batch, no evaluation, the modes alternating
within each repeat (bench/mode_cost.py):

  fp32            the f32 kernels
  bf16            bf16 inputs; where the CPU has AVX512_BF16 or AMX the Linear products run on
                  them natively (Note [Native bf16 GEMMs]), else they are widened to f32
  bf16 emulated   DPT_CPU_BF16=emulated: bf16 inputs widened to f32 (what a CPU without bf16 does)
  fp16            fp16 inputs widened to f32 (oneDNN 2.6 has no fp16 matmul on the CPU) and loss
                  scaling

    scripts/python bench/precision_speed.py --data data/fmnist.h5
"""
import argparse
import time

import mode_cost

MODES = [("fp32", ["--precision", "fp32"]),
         ("bf16", ["--precision", "bf16"]),
         ("bf16 emulated", ["--precision", "bf16"], {"DPT_CPU_BF16": "emulated"}),
         ("fp16", ["--precision", "fp16"])]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode_cost.add_common_arguments(p, ranks=(1,), steps=40, repeats=3)
    p.set_defaults(models=["mlp"], optimizer="adamw")
    args = p.parse_args()
    started = time.time()
    runs = mode_cost.measure(args, MODES)
    print(mode_cost.table(args, MODES, runs, "Mixed precision (--precision)", started))


if __name__ == "__main__":
    main()
