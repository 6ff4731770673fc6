#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Data-parallel training throughput of dptrain (mpirun, MPI all-reduce on a communication thread)
beside PyTorch DistributedDataParallel (gloo), launched the same way: N processes on this node,
one thread each, each pinned to its own core, the same model, global batch, optimizer and data.

    scripts/python bench/compare_ddp.py --data data/fmnist.h5 --ranks 2 --steps 60 --repeats 3

Also reports each model's scaling efficiency against dptrain's own 1-rank, 1-thread run, the
exposed communication time (the step's wait for the all-reduce after backward) as a share of the
step, and the machine's ceiling: N independent 1-rank runs of batch B/N at the same time, each
pinned to its own core, with no communication at all. Their summed samples/s bound what any
data-parallel run of N ranks can reach here (the cores share caches and memory bandwidth). Needs
torch, numpy and h5py (scripts/install-deps.sh); scripts/python finds an interpreter with them.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from compare_pytorch import WARMUP_STEPS, emit_table, read_summary  # noqa: E402
from machine import cpu_description, isa_cap_env, reference_blas_env  # noqa: E402
from requires import require  # noqa: E402


def run_dptrain(args, model, ranks):
    with tempfile.TemporaryDirectory() as tmp:
        metrics = os.path.join(tmp, "m.jsonl")
        train = [os.path.join(args.bin_dir, "train"), "--data", args.data, "--model", model,
                 "--steps", str(args.steps), "--batch-size", str(args.batch), "--threads", "1",
                 "--optimizer", "sgd", "--lr", "0.01", "--momentum", "0.9", "--seed", "0",
                 "--eval=false", "--quiet", "--metrics", metrics]
        cmd = [os.path.join(HERE, "..", "launch", "dptrun"), "-n", str(ranks)]
        cmd += (["--no-bind"] if args.no_bind else []) + train
        subprocess.run(cmd, check=True, capture_output=True, text=True,
                       env=dict(os.environ, **args.dpt_env))
        summary = read_summary(metrics, world_size=ranks)
        return summary["samples_per_sec"], summary["step_ms"]


def run_independent(args, model, ranks):
    """Summed samples/s of `ranks` concurrent, unconnected 1-rank runs of batch B/ranks."""
    with tempfile.TemporaryDirectory() as tmp:
        procs, files = [], []
        for r in range(ranks):
            metrics = os.path.join(tmp, f"m{r}.jsonl")
            files.append(metrics)
            train = [os.path.join(args.bin_dir, "train"), "--data", args.data, "--model", model,
                     "--steps", str(args.steps), "--batch-size", str(args.batch // ranks),
                     "--threads", "1", "--optimizer", "sgd", "--lr", "0.01", "--momentum", "0.9",
                     "--seed", "0", "--eval=false", "--quiet", "--metrics", metrics]
            procs.append(subprocess.Popen(["taskset", "-c", str(r % os.cpu_count())] + train,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                          env=dict(os.environ, **args.dpt_env)))
        for proc in procs:
            if proc.wait() != 0:
                raise SystemExit(f"independent run failed: {proc.stderr.read().decode()}")
        return sum(read_summary(f)["samples_per_sec"] for f in files)


PYTORCH_WORKER = r"""
import os, sys, time, h5py, numpy as np, torch, torch.distributed as dist, torch.nn as nn
rank, world, port = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
data, model_name, steps, batch, warmup = sys.argv[4], sys.argv[5], int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
os.sched_setaffinity(0, {rank % os.cpu_count()})
torch.set_num_threads(1)
dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[9])))
from compare_pytorch import torch_model
torch.manual_seed(0)
model = nn.parallel.DistributedDataParallel(torch_model(model_name, nn))
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
local = batch // world
with h5py.File(data, "r") as f:
    n = steps * batch
    images = f["train/images"][:n].astype(np.float32) / 255.0
    labels = f["train/labels"][:n].astype(np.int64)
    mean, std = float(f.attrs["mean"]), float(f.attrs["std"])
x_all, y_all = torch.from_numpy((images - mean) / std), torch.from_numpy(labels)
loss_fn = nn.CrossEntropyLoss()
for step in range(steps):
    if step == warmup:
        dist.barrier()
        start = time.perf_counter()
    lo = step * batch + rank * local
    opt.zero_grad(set_to_none=True)
    loss_fn(model(x_all[lo:lo + local]), y_all[lo:lo + local]).backward()
    opt.step()
dist.barrier()
if rank == 0:
    print((steps - warmup) * batch / (time.perf_counter() - start))
dist.destroy_process_group()
"""


def run_pytorch_ddp(args, model, ranks, port):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", **args.torch_env)
    procs = [subprocess.Popen([sys.executable, "-c", PYTORCH_WORKER, str(r), str(ranks), str(port),
                               args.data, model, str(args.steps), str(args.batch), str(WARMUP_STEPS),
                               os.path.join(HERE, "compare_pytorch.py")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for r in range(ranks)]
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (out, err) in zip(procs, outs):
        if p.returncode != 0:
            raise SystemExit(f"PyTorch DDP worker failed:\n{err[-2000:]}")
    return float(outs[0][0].strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.path.join(HERE, "..", "data", "fmnist.h5"))
    p.add_argument("--bin-dir", default=os.path.join(HERE, "..", "build", "bin"))
    p.add_argument("--models", nargs="+", default=["mlp", "cnn"])
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", help="also append the markdown table to this file")
    p.add_argument("--no-bind", action="store_true",
                   help="dptrain's ranks unbound (dptrun --no-bind) instead of one core each")
    p.add_argument("--cap-isa", choices=["avx2"],
                   help="run both on AVX2 code only (an AVX2 machine approximated on a wider CPU)")
    args = p.parse_args()
    args.dpt_env, args.torch_env, cap_note = isa_cap_env(args.cap_isa)
    blas_env, blas_note = reference_blas_env()
    if not args.cap_isa:
        args.torch_env.update(blas_env)
    require("torch", "numpy", "h5py")  # the DDP workers (child processes of this interpreter) import them
    if not os.path.exists(args.data):
        raise SystemExit(f"{args.data} not found: build/bin/dpt-data import-fashion-mnist {args.data}")
    import torch

    rows = []
    port = 29500 + os.getpid() % 1000
    for model in args.models:
        ours, ours1, theirs, ceiling, split = [], [], [], [], None
        for i in range(args.repeats):
            sps, split = run_dptrain(args, model, args.ranks)
            ours.append(sps)
            ours1.append(run_dptrain(args, model, 1)[0])
            theirs.append(run_pytorch_ddp(args, model, args.ranks, port + i))
            ceiling.append(run_independent(args, model, args.ranks))
        o, o1, t = statistics.median(ours), statistics.median(ours1), statistics.median(theirs)
        c = statistics.median(ceiling)
        step = sum(split[k] for k in ("forward", "backward", "comm_exposed", "optimizer", "data_wait"))
        rows.append((model, o, t, o1, o / (args.ranks * o1), split["comm_exposed"] / step, c,
                     c / (args.ranks * o1)))
        print(f"{model}: dptrain {o:.1f} samples/s on {args.ranks} ranks ({[round(v) for v in ours]}), "
              f"1 rank {o1:.1f} ({[round(v) for v in ours1]}), PyTorch DDP {t:.1f} "
              f"({[round(v) for v in theirs]}), independent ceiling {c:.1f} "
              f"({[round(v) for v in ceiling]})", flush=True)
    table = [f"Data-parallel throughput, {args.ranks} ranks x 1 thread on one node, global batch "
             f"{args.batch}, SGD momentum 0.9, {args.steps} steps (first {WARMUP_STEPS} left out), "
             f"median of {args.repeats} ({time.strftime('%Y-%m-%d')}, torch {torch.__version__}, gloo, "
             f"{blas_note if not args.cap_isa else 'OpenBLAS core Haswell'}"
             f"{', dptrain ranks unbound' if args.no_bind else ''}"
             f"{', OMPI_MCA_mpi_yield_when_idle=' + os.environ['OMPI_MCA_mpi_yield_when_idle'] if 'OMPI_MCA_mpi_yield_when_idle' in os.environ else ''}"
             f"); {cap_note}{cpu_description()}", "",
             "| model | dptrain samples/s | PyTorch DDP samples/s | ratio | dptrain 1 rank | scaling efficiency | exposed comm / step | no-comm ceiling (ratio to DDP, efficiency) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for model, o, t, o1, eff, exposed, c, c_eff in rows:
        table.append(f"| {model} | {o:.1f} | {t:.1f} | {o / t:.2f}x | {o1:.1f} | {eff:.0%} | {exposed:.1%} "
                     f"| {c:.1f} ({c / t:.2f}x, {c_eff:.0%}) |")
    emit_table(table, args.out)


if __name__ == "__main__":
    main()
