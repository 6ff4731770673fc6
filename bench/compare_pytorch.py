#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Training throughput of dptrain beside PyTorch on the same model, data, batch, optimizer and
thread count, run alternately in one session so both see the same machine load.

    scripts/python bench/compare_pytorch.py --data data/fmnist.h5 --threads 1 --batch 128 --steps 60

Reports samples/s (steps after the first 5, as dptrain's metrics summary does) and the ratio
dptrain / PyTorch, the median of --repeats runs of each. Needs torch, numpy and h5py (Debian's
python3-torch, -numpy, -h5py: scripts/install-deps.sh); scripts/python finds an interpreter with them.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

WARMUP_STEPS = 5


def torch_model(name, nn):
    if name == "cnn":
        return nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3136, 10))
    if name == "mlp":
        return nn.Sequential(
            nn.Flatten(), nn.Linear(784, 2048), nn.ReLU(), nn.Linear(2048, 2048), nn.ReLU(),
            nn.Linear(2048, 2048), nn.ReLU(), nn.Linear(2048, 10))
    raise SystemExit(f"unknown model {name}")


def run_pytorch(args, model_name):
    """One PyTorch run in a child process (so thread settings start fresh); returns samples/s."""
    code = f"""
import time, h5py, numpy as np, torch, torch.nn as nn
torch.set_num_threads({args.threads})
torch.manual_seed(0)
with h5py.File({args.data!r}, "r") as f:
    n = {args.steps * args.batch}
    images = f["train/images"][:n].astype(np.float32) / 255.0
    labels = f["train/labels"][:n].astype(np.int64)
    mean, std = float(f.attrs["mean"]), float(f.attrs["std"])
device = torch.device("cuda" if {args.device!r} != "cpu" else "cpu")
x_all = torch.from_numpy((images - mean) / std).to(device)
y_all = torch.from_numpy(labels).to(device)
import importlib.util, sys
spec = importlib.util.spec_from_file_location("bench", {os.path.abspath(__file__)!r})
bench = importlib.util.module_from_spec(spec); spec.loader.exec_module(bench)
model = bench.torch_model({model_name!r}, nn).to(device)
if {args.optimizer!r} == "adamw":
    opt = torch.optim.AdamW(model.parameters(), lr={args.lr}, weight_decay=0.01)
else:
    opt = torch.optim.SGD(model.parameters(), lr={args.lr}, momentum=0.9)
loss_fn = nn.CrossEntropyLoss()
for step in range({args.steps}):
    if step == {WARMUP_STEPS}:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
    x = x_all[step * {args.batch}:(step + 1) * {args.batch}]
    y = y_all[step * {args.batch}:(step + 1) * {args.batch}]
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
if device.type == "cuda":
    torch.cuda.synchronize()
elapsed = time.perf_counter() - start
print(({args.steps} - {WARMUP_STEPS}) * {args.batch} / elapsed)
"""
    # Debian's torch calls OpenBLAS through the generic BLAS interface, so torch.set_num_threads
    # does not reach OpenBLAS's own pool: without this PyTorch's GEMMs would use every core.
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads),
               **args.torch_env)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         env=env)
    return float(out.stdout.strip().splitlines()[-1])


def read_summary(metrics_path, world_size=1):
    """The summary line of a dptrain metrics file, from a job of `world_size` ranks (N separate
    one-rank jobs would each write one too)."""
    with open(metrics_path) as f:
        summary = [json.loads(l) for l in f if '"summary"' in l][-1]
    if summary.get("world_size") != world_size:
        raise SystemExit(f"{metrics_path}: a job of {summary.get('world_size')} rank(s), expected {world_size}")
    return summary


def emit_table(lines, out_path):
    """Prints a markdown table and, with out_path, appends it there too."""
    text = "\n".join(lines)
    print("\n" + text)
    if out_path:
        with open(out_path, "a") as f:
            f.write(text + "\n\n")


def run_dptrain(args, model_name):
    with tempfile.TemporaryDirectory() as tmp:
        metrics = os.path.join(tmp, "m.jsonl")
        cmd = [os.path.join(args.bin_dir, "train"), "--data", args.data, "--model", model_name,
               "--steps", str(args.steps), "--batch-size", str(args.batch), "--threads",
               str(args.threads), "--optimizer", args.optimizer, "--lr", str(args.lr),
               "--seed", "0", "--eval=false", "--quiet", "--metrics", metrics,
               "--device", args.device]
        if args.optimizer == "sgd":
            cmd += ["--momentum", "0.9"]
        subprocess.run(cmd, check=True, capture_output=True, text=True,
                       env=dict(os.environ, **args.dpt_env))
        summary = read_summary(metrics)
        return summary["samples_per_sec"], summary["step_ms"]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.path.join(here, "..", "data", "fmnist.h5"))
    p.add_argument("--bin-dir", default=os.path.join(here, "..", "build", "bin"))
    p.add_argument("--models", nargs="+", default=["cnn", "mlp"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--optimizer", choices=["adamw", "sgd"], default="adamw")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu",
                   help="cpu, or cuda for both dptrain and PyTorch on the first GPU")
    p.add_argument("--out", help="also append the markdown table to this file")
    p.add_argument("--cap-isa", choices=["avx2"],
                   help="run both on AVX2 code only (an AVX2 machine approximated on a wider CPU)")
    args = p.parse_args()
    from machine import cpu_description, isa_cap_env, reference_blas_env
    args.dpt_env, args.torch_env, cap_note = isa_cap_env(args.cap_isa)
    blas_env, blas_note = reference_blas_env()
    if not args.cap_isa:
        args.torch_env.update(blas_env)
    from requires import require  # here, not at the top: the PyTorch child loads this file too
    require("torch", "numpy", "h5py")  # the PyTorch runs (child processes of this interpreter) import them
    if not os.path.exists(args.data):
        raise SystemExit(f"{args.data} not found: build/bin/dpt-data import-fashion-mnist {args.data}")

    import torch

    rows = []
    for model_name in args.models:
        ours, theirs, split = [], [], None
        for _ in range(args.repeats):  # alternate so both see the same background load
            sps, split = run_dptrain(args, model_name)
            ours.append(sps)
            theirs.append(run_pytorch(args, model_name))
        o, t = statistics.median(ours), statistics.median(theirs)
        rows.append((model_name, o, t, o / t, split))
        print(f"{model_name}: dptrain {o:.1f} samples/s, PyTorch {t:.1f} samples/s, ratio {o / t:.2f}"
              f"  (dptrain runs {[round(v) for v in ours]}, PyTorch runs {[round(v) for v in theirs]})",
              flush=True)

    table = [f"Training throughput, batch {args.batch}, {args.threads} thread(s), {args.optimizer}, "
             f"{args.steps} steps (first {WARMUP_STEPS} left out), median of {args.repeats} "
             f"({time.strftime('%Y-%m-%d')}, torch {torch.__version__}, "
             f"{blas_note if not args.cap_isa else 'OpenBLAS core Haswell'}); {cap_note}{cpu_description()}", "",
             "| model | dptrain samples/s | PyTorch samples/s | ratio | dptrain step ms (fwd / bwd / opt / data) |",
             "|---|---:|---:|---:|---|"]
    for name, o, t, r, s in rows:
        table.append(f"| {name} | {o:.1f} | {t:.1f} | {r:.2f}x | {s['forward']:.1f} / {s['backward']:.1f}"
                     f" / {s['optimizer']:.1f} / {s['data_wait']:.1f} |")
    emit_table(table, args.out)


if __name__ == "__main__":
    main()
