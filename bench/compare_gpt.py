#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The gpt trained by dptrain and by PyTorch side by side: the same model (nanoGPT's, defined in
examples/gpt_pytorch.py), data file, batch, context, optimizer, schedule, clipping and thread count.

    scripts/python bench/compare_gpt.py --data data/shakespeare.h5 --steps 2000
    scripts/python bench/compare_gpt.py --data data/shakespeare.h5 --steps 200 --ranks 2 --no-torch

Both train --steps steps of --batch random windows of --block-size tokens (dptrain draws them
from (seed, epoch, position); PyTorch with its own generator, as nanoGPT does), AdamW (beta2 0.99,
weight decay 0.1 on every parameter in both), learning rate 1e-3 with --warmup linear steps and a
cosine decay to 1e-4 (dptrain's schedule formula in both), gradient norm clipped at 1, dropout 0.
Then both evaluate the whole validation split in consecutive windows (`train eval`'s order).
Reported: validation loss of each and their ratio; tokens/s over the steps after the first 5,
without evaluation (dptrain's metrics summary; the same rule timed in the PyTorch child); with
--ranks N also dptrain on N ranks x --threads threads at the same per-rank batch, and its scaling
efficiency against its own 1-rank run (tokens/s / (N x 1-rank tokens/s)).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

WARMUP_STEPS = 5
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")


def recipe(args):
    return dict(lr=1e-3, min_lr=1e-4, warmup=args.warmup, beta2=0.99, weight_decay=0.1, clip=1.0)


def torch_child(args):
    """PyTorch training in a child process (fresh thread settings); prints one JSON line."""
    r = recipe(args)
    return f"""
import json, math, sys, time
import h5py, numpy as np, torch
from torch.nn import functional as F
sys.path.insert(0, {os.path.join(ROOT, 'examples')!r})
import gpt_pytorch as g
torch.set_num_threads({args.threads})
torch.manual_seed({args.seed})
with h5py.File({args.data!r}, "r") as f:
    train = torch.from_numpy(f["train/tokens"][()].astype(np.int64))
    vocab = int(f.attrs["vocab_size"])
config = g.GPTConfig(n_layer={args.n_layer}, n_head={args.n_head}, n_embd={args.n_embd},
                     block_size={args.block_size}, vocab_size=vocab, dropout=0.0, bias=False)
model = g.GPT(config)
opt = torch.optim.AdamW(model.parameters(), lr={r['lr']}, betas=(0.9, {r['beta2']}),
                        weight_decay={r['weight_decay']})
T, B, steps, warmup = {args.block_size}, {args.batch}, {args.steps}, {r['warmup']}
def lr_at(step):  # dptrain's LrSchedule (src/nn/optim/schedule.cpp), cosine
    if step < warmup:
        return {r['lr']} * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, steps - warmup))
    return {r['min_lr']} + 0.5 * ({r['lr']} - {r['min_lr']}) * (1 + math.cos(math.pi * t))
gen = torch.Generator().manual_seed({args.seed})
first = last = None
for step in range(steps):
    if step == {WARMUP_STEPS}:
        start = time.perf_counter()
    ix = torch.randint(len(train) - T - 1, (B,), generator=gen)
    x = torch.stack([train[i:i + T] for i in ix])
    y = torch.stack([train[i + 1:i + 1 + T] for i in ix])
    for group in opt.param_groups:
        group["lr"] = lr_at(step)
    logits = model(x)
    loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), {r['clip']})
    opt.step()
    first = loss.item() if first is None else first
    last = loss.item()
elapsed = time.perf_counter() - start
model.eval()
x, y = g.read_windows({args.data!r}, "test", T, 0)
with torch.no_grad():
    total = 0.0
    for i in range(0, len(x), 256):
        logits = model(x[i:i + 256])
        total += F.cross_entropy(logits.reshape(-1, vocab).double(), y[i:i + 256].reshape(-1),
                                 reduction="sum").item()
print(json.dumps(dict(tokens_per_sec=(steps - {WARMUP_STEPS}) * B * T / elapsed,
                      val_loss=total / y.numel(), first_loss=first, last_loss=last)))
"""


def run_torch(args):
    # Debian's torch calls OpenBLAS through the generic BLAS interface: its own thread count, and
    # its best kernels for this CPU (bench/machine.py), so that the reference runs at its best.
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads),
               **args.torch_env)
    out = subprocess.run([sys.executable, "-c", torch_child(args)], check=True, capture_output=True,
                         text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_dptrain(args, ranks):
    r = recipe(args)
    with tempfile.TemporaryDirectory() as tmp:
        metrics = os.path.join(tmp, "m.jsonl")
        cmd = [os.path.join(args.bin_dir, "train"), "--data", args.data, "--model", "gpt",
               "--n-layer", str(args.n_layer), "--n-head", str(args.n_head), "--n-embd",
               str(args.n_embd), "--block-size", str(args.block_size), "--steps", str(args.steps),
               "--epochs", "1000", "--batch-size", str(args.batch * ranks), "--threads",
               str(args.threads), "--optimizer", "adamw", "--lr", str(r["lr"]), "--beta2",
               str(r["beta2"]), "--weight-decay", str(r["weight_decay"]), "--clip-grad-norm",
               str(r["clip"]), "--lr-schedule", "cosine", "--warmup-steps", str(r["warmup"]),
               "--min-lr", str(r["min_lr"]), "--seed", str(args.seed), "--quiet", "--metrics",
               metrics]
        if ranks > 1:
            cmd = [os.path.join(ROOT, "launch", "dptrun"), "-n", str(ranks)] + cmd
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        with open(metrics) as f:
            lines = [json.loads(l) for l in f]
    summary = [l for l in lines if l.get("event") == "summary"][-1]
    evals = [l for l in lines if l.get("event") == "eval"]
    steps = [l for l in lines if l.get("event") == "step"]
    return dict(tokens_per_sec=summary["tokens_per_sec"], val_loss=evals[-1]["loss"],
                first_loss=steps[0]["loss"], last_loss=steps[-1]["loss"])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.path.join(ROOT, "data", "shakespeare.h5"))
    p.add_argument("--bin-dir", default=os.path.join(ROOT, "build", "bin"))
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch", type=int, default=12, help="windows per step (per rank)")
    p.add_argument("--block-size", type=int, default=64)
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--n-embd", type=int, default=128)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--ranks", type=int, default=1, help="> 1: also dptrain on this many ranks")
    p.add_argument("--no-torch", action="store_true", help="dptrain only")
    p.add_argument("--out", help="also append the markdown table to this file")
    args = p.parse_args()
    sys.path.insert(0, HERE)
    from machine import cpu_description, reference_blas_env
    args.torch_env, blas_note = reference_blas_env()
    from requires import require
    require("torch", "numpy", "h5py")
    if not os.path.exists(args.data):
        raise SystemExit(f"{args.data} not found: scripts/fetch-shakespeare.sh and "
                         "build/bin/dpt-data import-text (README, 'A language model')")
    import torch

    rows = []
    ours = run_dptrain(args, 1)
    rows.append(("dptrain, 1 rank", ours))
    print(f"dptrain: {json.dumps(ours)}", flush=True)
    if not args.no_torch:
        theirs = run_torch(args)
        rows.append((f"PyTorch {torch.__version__}", theirs))
        print(f"PyTorch: {json.dumps(theirs)}", flush=True)
    if args.ranks > 1:
        scaled = run_dptrain(args, args.ranks)
        rows.append((f"dptrain, {args.ranks} ranks", scaled))
        print(f"dptrain x{args.ranks}: {json.dumps(scaled)}", flush=True)

    table = [f"gpt {args.n_layer}x{args.n_embd} ({args.n_head} heads, context {args.block_size}), "
             f"{args.steps} steps of {args.batch} windows per rank, {args.threads} thread(s) per "
             f"rank, AdamW + cosine, {time.strftime('%Y-%m-%d')}, torch {torch.__version__} "
             f"({blas_note}); {cpu_description()}", "",
             "| run | first loss | last train loss | validation loss | tokens/s | vs dptrain 1 rank |",
             "|---|---:|---:|---:|---:|---|"]
    for name, r in rows:
        if name.startswith("PyTorch"):
            rel = (f"val loss {r['val_loss'] / ours['val_loss']:.3f}x, dptrain "
                   f"{ours['tokens_per_sec'] / r['tokens_per_sec']:.2f}x faster")
        elif "ranks" in name:
            rel = f"scaling efficiency {r['tokens_per_sec'] / (args.ranks * ours['tokens_per_sec']):.2f}"
        else:
            rel = ""
        table.append(f"| {name} | {r['first_loss']:.4f} | {r['last_loss']:.4f} | {r['val_loss']:.4f} "
                     f"| {r['tokens_per_sec']:.0f} | {rel} |")
    text = "\n".join(table)
    print("\n" + text)
    if args.out:
        with open(args.out, "a") as f:
            f.write(text + "\n\n")


if __name__ == "__main__":
    main()
