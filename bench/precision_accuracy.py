#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Test accuracy of `cnn` and `mlp` trained in fp32, bf16 and fp16 (`train --precision`) with the
same recipe: 2 epochs, AdamW lr 1e-3, batch 128, the same seed. bf16/fp16 round the inputs of
every GEMM and convolution to the format and accumulate in f32 (Note [Mixed precision in layers]);
fp16 scales the loss (Note [Loss scaling]). Reported per model and precision: test accuracy, its
difference to fp32 in points (the target: within 0.5), the final training loss, samples/s and,
for fp16, the steps skipped for overflow and the final loss scale.

    scripts/python bench/precision_accuracy.py --data data/fmnist.h5
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import machine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(args, model, precision, seed):
    with tempfile.TemporaryDirectory() as tmp:
        metrics = os.path.join(tmp, "m.jsonl")
        cmd = [args.train, "--data", args.data, "--model", model, "--epochs", str(args.epochs),
               "--batch-size", "128", "--optimizer", "adamw", "--lr", "1e-3", "--seed", str(seed),
               "--threads", str(args.threads), "--precision", precision, "--quiet",
               "--metrics", metrics]
        subprocess.run(cmd, check=True)
        with open(metrics) as f:
            lines = [json.loads(line) for line in f]
    return next(line for line in lines if line["event"] == "summary")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--train", default=os.path.join(ROOT, "build", "bin", "train"))
    p.add_argument("--models", nargs="+", default=["cnn", "mlp"])
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "fp16"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    started = time.time()
    rows = []
    for model in args.models:
        for seed in args.seeds:
            reference = None
            for precision in args.precisions:
                s = run(args, model, precision, seed)
                accuracy = s["test_accuracy"]
                if precision == "fp32":
                    reference = accuracy
                delta = "" if reference is None or precision == "fp32" else f"{100 * (accuracy - reference):+.2f}"
                scaling = (f"{s['overflow_steps']} / {s['loss_scale']:g}" if "loss_scale" in s else "")
                rows.append(f"| {model} | {seed} | {precision} | {accuracy:.4f} | {delta} | "
                            f"{s['final_loss']:.4f} | {s['samples_per_sec']:.0f} | {scaling} |")
                print(rows[-1], file=sys.stderr, flush=True)
    print(f"{machine.cpu_description()}; {args.threads} thread(s); {args.epochs} epochs, AdamW lr 1e-3, "
          f"batch 128; {time.time() - started:.0f} s in all")
    print()
    print("| model | seed | precision | test accuracy | vs fp32, points | final loss | samples/s | "
          "fp16 overflow steps / final scale |")
    print("|---|---:|---|---:|---:|---:|---:|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
