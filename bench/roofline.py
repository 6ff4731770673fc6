#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Roofline of a training step: each phase of the reference models' steady-state step beside the
machine's limit for it, measured in one run.

    scripts/python bench/roofline.py --data data/fmnist.h5 [--threads 1] [--batch 128] [--markdown]
                                     [--json roofline.json] [--cap-isa avx2]

1. build/bin/dpt-limits measures the limits: sgemm GFLOP/s with oneDNN and OpenBLAS, square at n
   and at the models' GEMM shapes for this batch, and STREAM-like memory bandwidth. It runs before
   and after the training runs, and each limit is the better of the two: a limit measured while
   another process held the core would otherwise sit below what the training phases reach.
2. build/bin/train runs cnn and mlp (SGD with momentum 0.9, --eval=false) with --timeline; the
   steps after --warmup give each phase's median time per step: every layer's forward and
   backward, the optimizer step, the data wait, and the rest of the step.
3. Each phase's work comes from the layer shapes:
   - GEMM phases (Linear, Conv2d): FLOP = 2 x rows x in x out per product, the forward one product,
     the backward two (weights, and data except for the first layer with parameters, which has
     no input gradient and under which nothing runs backward; a convolution counts as its im2col
     GEMM: rows = batch x output pixels, in = in_channels x kernel area). Their limits: the best BLAS's sgemm rate at n x n x n, and at
     the layer's own products (time-weighted when the phase has two). The backward of a layer
     with a fused ReLU also applies the ReLU's gradient (3 x 4 bytes per output), not counted.
   - Memory phases, bytes moved per step: max pooling forward reads the input and writes the
     output (4 bytes each) and a 1-byte argmax per output, backward the reverse; an unfused ReLU
     reads and writes 4 bytes per element forward, reads 2 and writes 1 backward; the optimizer
     per parameter: SGD with momentum reads p, g, buf and writes p, buf (5 x 4 bytes), plain SGD
     3 x 4, AdamW reads p, g, m, v and writes p, m, v (7 x 4). Their limit: triad GB/s as
     STREAM counts it (3 streams; the write-allocate read of the stored array not counted; a
     phase that reads what it writes, as the optimizer does, causes no such read).
   The triad runs from DRAM; a phase whose data fit in the last-level cache (on a CPU with a
   large one) can beat it, and the optimizer's line then says so.
   A fused ReLU and Flatten do no work of their own; the data wait is the training thread's wait
   for the prefetch thread, which decodes and normalises the batch beside it.
A share above 100% is real: the layers run oneDNN's own primitives (inner product, convolution),
which may beat both BLAS's sgemm at that shape.
--cap-isa avx2 runs both on AVX2 code only (as compare_pytorch.py does): the closest this machine
comes to an AVX2-only one.
Prints per model a table and two lines: the GEMM phases' share of the sgemm peak (n x n) and of
sgemm at their shapes, the optimizer's time over its memory floor, and the step's roofline (every
phase with a limit at its limit: GEMMs at their shapes' rate, memory phases at triad bandwidth).
Needs only Python's standard library.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from machine import isa_cap_env  # noqa: E402

# Bytes per parameter of one optimizer step (read + written), see the docstring.
OPTIMIZER_BYTES = {"sgd-momentum": 5 * 4, "sgd": 3 * 4, "adamw": 7 * 4}
# Arrays of one parameter each the optimizer touches (p, g and its state): its working set.
OPTIMIZER_ARRAYS = {"sgd-momentum": 3, "sgd": 2, "adamw": 4}
POOL_ARGMAX_BYTES = 1  # src/kernels/cpu/pool.cpp: one byte per output


def run_limits(args, tmp):
    path = os.path.join(tmp, "limits.json")
    cmd = [os.path.join(args.bin_dir, "dpt-limits"), "--threads", str(args.threads), "--batch",
           str(args.batch), "--repeats", str(args.limit_repeats), "--n", str(args.n), "--json", path]
    if args.mib:
        cmd += ["--mib", str(args.mib)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=args.env)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr}")
    with open(path) as f:
        return json.load(f), out.stdout


def best_limits(first, second):
    """Each rate of two dpt-limits runs of the same shapes, the higher of the two."""
    merged = json.loads(json.dumps(first))
    for x, y in zip(merged["sgemm"], second["sgemm"]):
        assert (x["product"], x["m"], x["n"], x["k"]) == (y["product"], y["m"], y["n"], y["k"])
        x["onednn_gflops"] = max(x["onednn_gflops"], y["onednn_gflops"])
        x["openblas_gflops"] = max(x["openblas_gflops"], y["openblas_gflops"])
        x["best_gflops"] = max(x["onednn_gflops"], x["openblas_gflops"])
        x["best_blas"] = "oneDNN" if x["onednn_gflops"] >= x["openblas_gflops"] else "OpenBLAS"
    for name, kernel in second["memory"].items():
        if isinstance(kernel, dict) and kernel["gb_per_s"] > merged["memory"][name]["gb_per_s"]:
            merged["memory"][name] = kernel
    merged["runs"] = 2
    return merged


def run_train(args, model, tmp):
    """Trains `model` with a timeline of every step; returns (trace events, input CxHxW, the
    metrics summary)."""
    trace = os.path.join(tmp, f"{model}.trace.json")
    metrics = os.path.join(tmp, f"{model}.metrics.jsonl")
    cmd = [os.path.join(args.bin_dir, "train"), "--data", args.data, "--model", model,
           "--steps", str(args.steps), "--batch-size", str(args.batch), "--threads",
           str(args.threads), "--optimizer", "adamw" if args.optimizer == "adamw" else "sgd",
           "--lr", "0.01" if args.optimizer != "adamw" else "0.001", "--seed", "0",
           "--eval=false", "--quiet", "--timeline", trace, "--timeline-steps", str(args.steps),
           "--metrics", metrics]
    if args.optimizer == "sgd-momentum":
        cmd += ["--momentum", "0.9"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=args.env)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    shape = re.search(r"CxHxW=(\d+)x(\d+)x(\d+)", out.stderr + out.stdout)
    if not shape:
        raise SystemExit(f"{model}: train did not print the data's CxHxW:\n{out.stderr[-3000:]}")
    with open(trace) as f:
        events = [e for e in json.load(f)["traceEvents"] if e.get("ph") == "X"]
    with open(metrics) as f:
        summary = [json.loads(line) for line in f if '"summary"' in line][-1]
    return events, tuple(int(v) for v in shape.groups()), summary


def layer_spans(events, warmup):
    """Median ms per step of every compute-track span name, in order of first appearance, over
    the steps after `warmup`; plus the step and the rest of the step (not inside any span)."""
    steps = sorted((e for e in events if e["cat"] == "step"), key=lambda e: e["ts"])
    steady = steps[warmup:]
    if not steady:
        raise SystemExit(f"the timeline has {len(steps)} steps, none after {warmup} warm-up steps")
    order, per_step = [], []
    for s in steady:
        end = s["ts"] + s["dur"]
        inside = [e for e in events if e["tid"] == 0 and e["cat"] != "step"
                  and s["ts"] <= e["ts"] < end]
        times = {}
        for e in sorted(inside, key=lambda e: e["ts"]):
            key = (e["name"], e["cat"])
            if key not in times and key not in order:
                order.append(key)
            times[key] = times.get(key, 0.0) + e["dur"] / 1e3
        times[("rest", "other")] = s["dur"] / 1e3 - sum(times.values())
        times[("step", "step")] = s["dur"] / 1e3
        per_step.append(times)
    order += [("rest", "other"), ("step", "step")]
    return [(name, cat, statistics.median(t.get((name, cat), 0.0) for t in per_step))
            for name, cat in order], len(steady)


# ---- layer shapes and work ----

CONV = re.compile(r"Conv2d\((\d+) -> (\d+), kernel (\d+), stride (\d+), padding (\d+)(, relu)?\)")
LINEAR = re.compile(r"Linear\((\d+) -> (\d+)(, relu)?\)")
POOL = re.compile(r"MaxPool2d\(kernel (\d+), stride (\d+)\)")


def layers_of(events):
    """{index: description} from the span names "layers.<i> <description>"."""
    layers = {}
    for e in events:
        m = re.match(r"layers\.(\d+) (.*)", e["name"])
        if m:
            layers[int(m.group(1))] = m.group(2)
    return [layers[i] for i in sorted(layers)]


def layer_work(layers, batch, sample_shape):
    """Per layer index: dict with kind, shape facts, forward/backward work and parameters."""
    shape = (batch,) + sample_shape
    out = []
    # Backward stops at the first layer with parameters (no input gradient there, nothing run
    # below it): what a layer does backward depends on whether a layer under it has parameters.
    params_below = False
    for desc in layers:
        numel = 1
        for d in shape:
            numel *= d
        w = {"desc": desc, "kind": "none", "params": 0}
        if m := CONV.match(desc):
            c, o, k, s, p = (int(v) for v in m.groups()[:5])
            oh, ow = (shape[2] + 2 * p - k) // s + 1, (shape[3] + 2 * p - k) // s + 1
            gemm = (batch * oh * ow, c * k * k, o)
            w.update(kind="gemm", gemm=gemm, params=o * c * k * k + o,
                     forward=[("forward", gemm)],
                     backward=[("backward-weights", gemm)] + ([("backward-data", gemm)] if params_below else []))
            shape = (batch, o, oh, ow)
        elif m := LINEAR.match(desc):
            n_in, n_out = int(m.group(1)), int(m.group(2))
            gemm = (batch, n_in, n_out)
            w.update(kind="gemm", gemm=gemm, params=n_in * n_out + n_out,
                     forward=[("forward", gemm)],
                     backward=[("backward-weights", gemm)] + ([("backward-data", gemm)] if params_below else []))
            shape = (batch, n_out)
        elif m := POOL.match(desc):
            k, s = int(m.group(1)), int(m.group(2))
            oshape = (shape[0], shape[1], (shape[2] - k) // s + 1, (shape[3] - k) // s + 1)
            onumel = oshape[0] * oshape[1] * oshape[2] * oshape[3]
            moved = 4 * numel + (4 + POOL_ARGMAX_BYTES) * onumel
            w.update(kind="memory", forward_bytes=moved, backward_bytes=moved if params_below else 0)
            shape = oshape
        elif desc == "ReLU":
            w.update(kind="memory", forward_bytes=8 * numel, backward_bytes=12 * numel if params_below else 0)
        elif desc == "Flatten":
            f = 1
            for d in shape[1:]:
                f *= d
            shape = (batch, f)
        elif desc != "ReLU(fused)":
            w.update(kind="unknown")
        params_below = params_below or w["params"] > 0
        out.append(w)
    return out


def gflop(products):
    return sum(2.0 * r * i * o for _, (r, i, o) in products) * 1e-9


def shape_rate(limits, products):
    """Time-weighted best sgemm GFLOP/s of these products at their shapes (None if one is not
    among dpt-limits' shapes)."""
    floor_s = 0.0
    for product, (r, i, o) in products:
        match = [g for g in limits["sgemm"] if g["product"] == product
                 and (g["rows"], g["in"], g["out"]) == (r, i, o)]
        if not match:
            return None
        floor_s += 2.0 * r * i * o * 1e-9 / match[0]["best_gflops"]
    return gflop(products) / floor_s


def analyse(model, events, sample_shape, train_summary, limits, args):
    spans, steady = layer_spans(events, args.warmup)
    work = layer_work(layers_of(events), args.batch, sample_shape)
    square = [g for g in limits["sgemm"] if g["product"] == "square"][0]
    peak = square["best_gflops"]
    triad = limits["memory"]["triad"]["gb_per_s"]
    n_params = sum(w["params"] for w in work)
    rows = []
    gemm_flop = gemm_ms = gemm_floor_ms = 0.0
    floor_ms = 0.0  # the step's roofline: every phase with a limit at that limit
    for name, cat, ms in spans:
        row = {"phase": name if cat not in ("forward", "backward") else f"{name} {cat}",
               "category": cat, "ms": ms}
        m = re.match(r"layers\.(\d+) ", name)
        w = work[int(m.group(1))] if m else None
        if w and w["kind"] == "gemm":
            products = w[cat]
            gf = gflop(products)
            at_shape = shape_rate(limits, products)
            row.update(gflop=gf, gflops=gf / (ms * 1e-3) if ms > 0 else None, peak_gflops=peak,
                       shape_gflops=at_shape)
            limit = at_shape or peak
            row["floor_ms"] = gf / limit * 1e3
            gemm_flop += gf
            gemm_ms += ms
            gemm_floor_ms += row["floor_ms"]
        elif w and w["kind"] == "memory" and w[f"{cat}_bytes"]:
            b = w[f"{cat}_bytes"]
            row.update(mbytes=b / 1e6, gbps=b / (ms * 1e-3) * 1e-9 if ms > 0 else None,
                       limit_gbps=triad, floor_ms=b / (triad * 1e9) * 1e3)
        elif cat == "optimizer":
            b = OPTIMIZER_BYTES[args.optimizer] * n_params
            row.update(mbytes=b / 1e6, gbps=b / (ms * 1e-3) * 1e-9 if ms > 0 else None,
                       limit_gbps=triad, floor_ms=b / (triad * 1e9) * 1e3)
        if row.get("floor_ms") is not None and cat != "step":
            floor_ms += row["floor_ms"]
        if w and w["kind"] == "none":
            row["note"] = "fused into the previous layer" if "fused" in w["desc"] else "no work (a view)"
        elif cat == "data":
            row["note"] = "wait for the prefetch thread"
        elif cat == "allreduce":
            row["note"] = "wait for the gradient all-reduce"
        elif cat == "other":
            row["note"] = "loss, step bookkeeping (not in a span)"
        elif w and w["kind"] == "unknown":
            row["note"] = "no work model for this layer"
        rows.append(row)
    step_ms = [r for r in rows if r["category"] == "step"][0]["ms"]
    opt = [r for r in rows if r["category"] == "optimizer"][0]
    summary = {
        "model": model, "steady_steps": steady, "step_ms": step_ms, "parameters": n_params,
        "optimizer": args.optimizer,
        "gemm_gflop": gemm_flop, "gemm_ms": gemm_ms, "gemm_gflops": gemm_flop / (gemm_ms * 1e-3),
        "sgemm_peak_gflops": peak, "gemm_share_of_peak": gemm_flop / (gemm_ms * 1e-3) / peak,
        "gemm_share_of_shape_limit": gemm_floor_ms / gemm_ms,
        "optimizer_ms": opt["ms"], "optimizer_floor_ms": opt["floor_ms"],
        "optimizer_over_floor": opt["ms"] / opt["floor_ms"],
        # The floor is DRAM bandwidth: a working set that fits in the last-level cache can beat it.
        "optimizer_working_set_mb": OPTIMIZER_ARRAYS[args.optimizer] * 4 * n_params / 1e6,
        "last_level_cache_mb": limits["last_level_cache_mib"] * 2**20 / 1e6,
        "step_floor_ms": floor_ms, "step_share_of_floor": floor_ms / step_ms,
        # Which library train's CPU kernels chose for the backward-data GEMM, and why.
        "cpu_gemm": train_summary.get("cpu_gemm"),
    }
    return rows, summary


# ---- output ----

def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def share(rate, limit):
    return None if rate is None or not limit else 100.0 * rate / limit


def table_lines(rows, markdown):
    head = ["phase", "ms", "work", "achieved", "limit (n^3 / shape)", "share of limit"]
    body = []
    for r in rows:
        if "gflop" in r:
            work, rate = f"{r['gflop']:.3f} GFLOP", f"{fmt(r['gflops'], '.1f')} GFLOP/s"
            limit = f"{r['peak_gflops']:.1f} / {fmt(r['shape_gflops'], '.1f')} GFLOP/s"
            pct = (f"{fmt(share(r['gflops'], r['peak_gflops']), '.0f')}% / "
                   f"{fmt(share(r['gflops'], r['shape_gflops']), '.0f')}%")
        elif "mbytes" in r:
            work, rate = f"{r['mbytes']:.2f} MB", f"{fmt(r['gbps'], '.2f')} GB/s"
            limit, pct = f"{r['limit_gbps']:.2f} GB/s triad", f"{fmt(share(r['gbps'], r['limit_gbps']), '.0f')}%"
        else:
            work, rate, limit, pct = "-", "-", r.get("note", "-"), "-"
        phase = f"**{r['phase']}**" if markdown and r["category"] == "step" else r["phase"]
        body.append([phase, f"{r['ms']:.2f}", work, rate, limit, pct])
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|---|---:|---:|---:|---:|---:|"]
        return lines + ["| " + " | ".join(b) + " |" for b in body]
    widths = [max(len(x[c]) for x in [head] + body) for c in range(len(head))]
    return ["  ".join(x[c].ljust(widths[c]) if c == 0 else x[c].rjust(widths[c])
                      for c in range(len(head))) for x in [head] + body]


def summary_lines(s):
    return [
        f"{s['model']}: step {s['step_ms']:.1f} ms ({s['steady_steps']} steady steps); GEMM phases "
        f"{s['gemm_gflop']:.2f} GFLOP in {s['gemm_ms']:.1f} ms = {s['gemm_gflops']:.1f} GFLOP/s, "
        f"{100 * s['gemm_share_of_peak']:.0f}% of the sgemm peak ({s['sgemm_peak_gflops']:.1f} "
        f"GFLOP/s, n^3), {100 * s['gemm_share_of_shape_limit']:.0f}% of sgemm at their shapes"
        + (f"; backward-data GEMMs by {s['cpu_gemm']['backward_data']}" if s.get("cpu_gemm") else ""),
        f"{s['model']}: optimizer ({s['optimizer']}, {s['parameters']} parameters) "
        f"{s['optimizer_ms']:.2f} ms = {s['optimizer_over_floor']:.2f}x its memory floor "
        f"({s['optimizer_floor_ms']:.2f} ms at triad bandwidth)"
        + (f", though its {s['optimizer_working_set_mb']:.0f} MB fit in the "
           f"{s['last_level_cache_mb']:.0f} MB last-level cache"
           if s["optimizer_working_set_mb"] < s["last_level_cache_mb"] else "")
        + f"; the whole step at {100 * s['step_share_of_floor']:.0f}% of its roofline "
        f"({s['step_floor_ms']:.1f} ms)",
    ]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.path.join(HERE, "..", "data", "fmnist.h5"))
    p.add_argument("--bin-dir", default=os.path.join(HERE, "..", "build", "bin"))
    p.add_argument("--models", nargs="+", default=["cnn", "mlp"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--optimizer", choices=sorted(OPTIMIZER_BYTES), default="sgd-momentum",
                   help="sgd-momentum (momentum 0.9), sgd or adamw")
    p.add_argument("--steps", type=int, default=30, help="training steps per model")
    p.add_argument("--warmup", type=int, default=5, help="first steps left out")
    p.add_argument("--limit-repeats", type=int, default=5, help="dpt-limits --repeats")
    p.add_argument("--n", type=int, default=2048, help="side of the square sgemm (the peak)")
    p.add_argument("--mib", type=int, default=0, help="dpt-limits --mib (default: its own)")
    p.add_argument("--quick", action="store_true",
                   help="a fast check that everything runs (6 steps, 2 warm-up, small limits): "
                        "its figures mean little")
    p.add_argument("--cap-isa", choices=["avx2"],
                   help="run dpt-limits and train on AVX2 code only (ONEDNN_MAX_CPU_ISA, OPENBLAS_CORETYPE)")
    p.add_argument("--markdown", action="store_true", help="print markdown tables (for docs)")
    p.add_argument("--json", help="also write every figure to this file")
    args = p.parse_args()
    if args.quick:
        args.steps, args.warmup, args.limit_repeats, args.n = 6, 2, 1, 256
        args.mib = args.mib or 16
    cap_env = isa_cap_env(args.cap_isa)[0]
    cap_note = (f"ISA capped to {args.cap_isa.upper()} ("
                + ", ".join(f"{k}={v}" for k, v in cap_env.items()) + ") on ") if cap_env else ""
    args.env = dict(os.environ, **cap_env)
    if args.steps <= args.warmup:
        raise SystemExit(f"--steps {args.steps} leaves no step after --warmup {args.warmup}")
    if not os.path.exists(args.data):
        raise SystemExit(f"{args.data} not found: build/bin/dpt-data import-fashion-mnist {args.data}")

    with tempfile.TemporaryDirectory() as tmp:
        before, limits_text = run_limits(args, tmp)
        runs = {model: run_train(args, model, tmp) for model in args.models}
        after, after_text = run_limits(args, tmp)
        limits = best_limits(before, after)
        results = {model: analyse(model, events, sample, train_summary, limits, args)
                   for model, (events, sample, train_summary) in runs.items()}

    square = [g for g in limits["sgemm"] if g["product"] == "square"][0]
    mem = limits["memory"]
    caption = (f"Roofline, {args.threads} thread(s), batch {args.batch}, {args.optimizer}, "
               f"{args.steps} steps (first {args.warmup} left out, median per phase). "
               f"{cap_note}{limits['cpu']}; oneDNN {limits['onednn_version']} ({limits['onednn_isa']}), "
               f"OpenBLAS core {limits['openblas_core']}. Limits, best of 2 x {limits['repeats']} "
               f"(before and after training): "
               f"sgemm {square['m']}^3 oneDNN {square['onednn_gflops']:.1f}, OpenBLAS "
               f"{square['openblas_gflops']:.1f} GFLOP/s; triad {mem['triad']['gb_per_s']:.2f} GB/s "
               f"(3 streams counted, {mem['triad']['gb_per_s_with_write_allocate']:.2f} with the "
               f"write-allocate read), read-modify-write {mem['update']['gb_per_s']:.2f} GB/s, "
               f"arrays of {mem['array_mib']} MiB.")
    if not args.markdown:
        print(limits_text)
        print("# dpt-limits again, after the training runs (each limit below: the better of the two)")
        print(after_text)
    print(caption)
    for model, (rows, summary) in results.items():
        print(f"\n{'### ' if args.markdown else ''}{model}\n")
        print("\n".join(table_lines(rows, args.markdown)))
        print()
        print("\n".join(("- " if args.markdown else "") + line for line in summary_lines(summary)))
    if args.json:
        with open(args.json, "w") as f:
            settings = {k: v for k, v in vars(args).items() if k != "env"}
            json.dump({"caption": caption, "limits": limits, "limits_before": before,
                       "limits_after": after, "args": settings,
                       "models": {m: {"phases": r, "summary": s} for m, (r, s) in results.items()}},
                      f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
