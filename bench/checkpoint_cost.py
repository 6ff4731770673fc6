#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""What checkpoints cost training: `mlp` (AdamW: a 118 MB checkpoint) through launch/dptrun, 1
thread per rank, no evaluation, in three modes that alternate within each repeat:

  none    no checkpoints
  sync    --checkpoint-every N: every rank waits while rank 0 writes
  async   --checkpoint-every N --async-checkpoint: rank 0 takes a snapshot and a writer thread
          writes it while training goes on (the next checkpoint waits for it, if still running)

samples/s is the summary's: the steps after the first 5, without the time between steps (Note
[Training throughput]), so it shows what a background write costs the steps it overlaps. "with
stalls" adds the time training was held at the checkpoints during the run (each checkpoint's
`stall_s` metrics line; the checkpoint at the end of training, which every mode waits for in
full, is left out): the throughput a long run with checkpoints every N steps gets. stall and write
are means per checkpoint on rank 0; stall / sync write divides async's stall by the synchronous
write of the same repeat; the longest wait is async's longest wait for a previous write still
running (0: every write ended before the next checkpoint). Checkpoints go to a fresh directory under --dir (a disk here, not tmpfs:
see `df`).

    scripts/python bench/checkpoint_cost.py --data data/fmnist.h5
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time

from machine import cpu_description

HERE = os.path.dirname(os.path.abspath(__file__))


def modes(every):
    return [("none", []),
            ("sync", ["--checkpoint-every", str(every)]),
            ("async", ["--checkpoint-every", str(every), "--async-checkpoint"])]


def run(args, ranks, name, flags):
    """One job; returns (summary, [checkpoint lines])."""
    tmp = tempfile.mkdtemp(dir=args.dir, prefix="dpt-ckpt-bench-")
    try:
        metrics = os.path.join(tmp, "m.jsonl")
        cmd = [os.path.join(HERE, "..", "launch", "dptrun"), "-n", str(ranks),
               os.path.join(args.bin_dir, "train"), "--data", args.data, "--model", args.model,
               "--steps", str(args.steps), "--batch-size", str(args.batch), "--threads", "1",
               "--optimizer", "adamw", "--eval=false", "--quiet", "--metrics", metrics]
        if name != "none":
            cmd += ["--checkpoint-dir", os.path.join(tmp, "ckpt")] + flags
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        with open(metrics) as f:
            lines = [json.loads(line) for line in f if line.strip()]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary = lines[-1]
    if summary.get("event") != "summary" or summary.get("world_size") != ranks:
        raise SystemExit(f"expected the summary of a {ranks}-rank job, found {summary}")
    if summary.get("async_checkpoint", False) != (name == "async"):
        raise SystemExit(f"{name}: the summary says async_checkpoint {summary.get('async_checkpoint')}")
    return summary, [l for l in lines if l.get("event") == "checkpoint"]


def figures(args, summary, checkpoints):
    """samples/s, with stalls, stall per checkpoint (s), write per checkpoint (s), the longest wait
    for the previous write (s)."""
    during = [c for c in checkpoints if c["step"] < summary["steps"]]  # not the one at the end
    stalls = sum(c["stall_s"] for c in during)
    samples = summary["timed_steps"] * args.batch
    with_stalls = samples / (summary["train_s"] + stalls)
    n = summary.get("checkpoints", 0)
    stall = stalls / len(during) if during else 0.0
    write = summary["checkpoint_write_s"] / n if n else 0.0
    wait = max((c.get("wait_s", 0.0) for c in checkpoints), default=0.0)
    return summary["samples_per_sec"], with_stalls, stall, write, wait


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.path.join(HERE, "..", "data", "fmnist.h5"))
    p.add_argument("--bin-dir", default=os.path.join(HERE, "..", "build", "bin"))
    p.add_argument("--model", default="mlp")
    p.add_argument("--ranks", nargs="+", type=int, default=[1])
    p.add_argument("--batch", type=int, default=128, help="global batch")
    p.add_argument("--steps", type=int, default=120, help="steps per run (the summary leaves out 5)")
    p.add_argument("--every", type=int, default=20, help="steps between checkpoints")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dir", default=tempfile.gettempdir(), help="where the checkpoints go")
    args = p.parse_args()
    started = time.time()
    mode_list = modes(args.every)
    runs = {}
    for repeat in range(args.repeats):
        for ranks in args.ranks:
            shift = repeat % len(mode_list)
            for name, flags in mode_list[shift:] + mode_list[:shift]:
                f = figures(args, *run(args, ranks, name, flags))
                runs.setdefault((ranks, name), []).append(f)
                print(f"repeat {repeat + 1}/{args.repeats}: {ranks} rank(s) {name}: {f[0]:.1f} samples/s, "
                      f"{f[1]:.1f} with stalls, stall {f[2] * 1e3:.0f} ms, write {f[3] * 1e3:.0f} ms, "
                      f"longest wait {f[4] * 1e3:.0f} ms",
                      flush=True)

    def ms(values):
        return f"{statistics.median(values) * 1e3:.0f} ({min(values) * 1e3:.0f}-{max(values) * 1e3:.0f})"

    lines = [f"Checkpoint cost: `{args.model}`, AdamW, 1 thread per rank, global batch {args.batch}, "
             f"{args.steps} steps (first 5 left out), a checkpoint every {args.every} steps to {args.dir}, "
             f"{args.repeats} repeats with the modes alternating ({time.strftime('%Y-%m-%d')}, "
             f"{time.time() - started:.0f} s); {cpu_description()}", "",
             "| ranks | mode | samples/s | ratio to none | samples/s with stalls | ratio to none | "
             "stall per checkpoint, ms | write per checkpoint, ms | stall / sync write | "
             "longest wait for the previous write, ms |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for ranks in args.ranks:
        base = runs[(ranks, "none")]
        sync = runs[(ranks, "sync")]
        for name, _ in mode_list:
            r = runs[(ranks, name)]
            sps = statistics.median(f[0] for f in r)
            total = statistics.median(f[1] for f in r)
            ratio = statistics.median(a[0] / b[0] for a, b in zip(r, base))
            ratio_total = statistics.median(a[1] / b[0] for a, b in zip(r, base))
            if name == "none":
                cost = "| - | - | - | - |"
            else:
                share = statistics.median(a[2] / s[3] for a, s in zip(r, sync))
                cost = (f"| {ms([f[2] for f in r])} | {ms([f[3] for f in r])} | {share:.2f} | "
                        f"{max(f[4] for f in r) * 1e3:.0f} |")
            lines.append(f"| {ranks} | {name} | {sps:.1f} | {ratio:.3f} | {total:.1f} | {ratio_total:.3f} {cost}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
