#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Load a dptrain checkpoint (or a model file written by `train export`) into PyTorch.

    scripts/python examples/load_checkpoint_pytorch.py ckpt/step-468.h5
    scripts/python examples/load_checkpoint_pytorch.py ckpt/ --data data/fmnist.h5 --samples 1000 \\
        --logits logits.npy

The file's group /model holds the network: its attribute "layers" is a JSON list of layer specs
(one per nn.Sequential position) and each parameter is a float32 dataset named as PyTorch names
it ("layers.0.weight", conv [out, in, kh, kw], linear [out, in]). This script rebuilds the
nn.Sequential from the specs, keeps it as the attribute `layers` of a small wrapper module (so the
module's state_dict keys are exactly the dataset names), and loads the weights with
load_state_dict(strict=True): a missing, extra or mis-shaped tensor is an error.

With --data it evaluates on a split of a dptrain dataset file (docs/formats.md), feeding the model
x = (pixel / 255 - mean) / std in float32 as dptrain's loader does, and prints accuracy and loss
(compare with `train eval --checkpoint FILE --data FILE.h5 --samples N`). With --logits it also
saves the logits [N, classes] as float32 .npy.

Needs python3-torch, python3-h5py and python3-numpy (Debian), or torch, h5py and numpy from pip;
scripts/python runs it with an interpreter that has them (or the one DPT_PYTHON names).
"""
import argparse
import json
import os
import sys

import h5py
import numpy as np
import torch
from torch import nn

FORMATS = ("dptrain-checkpoint", "dptrain-model")  # checkpoint / `train export` output
FORMAT_VERSION = 1  # newest layout this script knows


def text(value):
    """An HDF5 string attribute as str (h5py returns fixed-length strings as bytes)."""
    return value.decode("utf-8") if isinstance(value, (bytes, np.bytes_)) else str(value)


def resolve(path):
    """A checkpoint directory (--checkpoint-dir) means its newest checkpoint: the file that its
    text file `latest` names. Anything else is taken as the file itself."""
    if os.path.isdir(path):
        with open(os.path.join(path, "latest")) as f:
            return os.path.join(path, f.read().strip())
    return path


def read_model(path):
    """Returns (layer specs, {parameter name: float32 tensor}, root attributes) of a file."""
    with h5py.File(path, "r") as f:
        fmt = text(f.attrs.get("format", b""))
        if fmt not in FORMATS:
            sys.exit(f"{path}: attribute 'format' is {fmt!r}, expected one of {FORMATS} "
                     "(not a dptrain checkpoint or model file)")
        version = int(f.attrs["format_version"])
        if version > FORMAT_VERSION:
            sys.exit(f"{path}: format_version {version} is newer than this script reads "
                     f"({FORMAT_VERSION})")
        model = f["model"]
        specs = json.loads(text(model.attrs["layers"]))
        state = {name: torch.from_numpy(ds[()]) for name, ds in model.items()}
        info = {"format": fmt, "step": int(f.attrs["step"]), "epoch": int(f.attrs["epoch"])}
    return specs, state, info


def make_layer(spec):
    """One PyTorch module from one dptrain layer spec (see layers_to_json in
    src/nn/train/checkpoint.cpp)."""
    kind = spec["type"]
    if kind == "conv2d":
        return nn.Conv2d(spec["in"], spec["out"], spec["kernel"], stride=spec.get("stride") or 1,
                         padding=spec.get("padding", 0), bias=spec.get("bias", True))
    if kind == "linear":
        return nn.Linear(spec["in"], spec["out"], bias=spec.get("bias", True))
    if kind == "maxpool2d":
        return nn.MaxPool2d(spec["kernel"], stride=spec.get("stride") or spec["kernel"],
                            padding=spec.get("padding", 0))
    if kind == "relu":
        return nn.ReLU()
    if kind == "flatten":
        return nn.Flatten()  # [N, C, H, W] -> [N, C*H*W], the same order as dptrain
    if kind == "dropout":
        return nn.Dropout(spec["p"])  # identity in eval mode, as in dptrain's evaluation
    raise ValueError(f"unknown layer type {kind!r} in {spec}")


class DptrainModel(nn.Module):
    """The network as an nn.Sequential named `layers`: parameter names are "layers.<i>.weight"
    and "layers.<i>.bias", the names the file uses."""

    def __init__(self, specs):
        super().__init__()
        self.layers = nn.Sequential(*[make_layer(s) for s in specs])

    def forward(self, x):
        return self.layers(x)


def load(path):
    """The model of a checkpoint or model file, weights loaded, in eval mode."""
    specs, state, info = read_model(path)
    model = DptrainModel(specs)
    model.load_state_dict(state, strict=True)
    return model.eval(), info


def load_split(path, split, samples):
    """The first `samples` (0: all) images of a split, normalised as dptrain's loader does, and
    their labels."""
    with h5py.File(path, "r") as f:
        group = f[split]
        n = group["images"].shape[0] if samples <= 0 else min(samples, group["images"].shape[0])
        pixels = group["images"][:n]  # uint8 [N, C, H, W]
        labels = group["labels"][:n].astype(np.int64)
        mean, std = np.float32(f.attrs["mean"]), np.float32(f.attrs["std"])
    # The same float32 arithmetic as dptrain (a 256-entry table in src/runtime/io/loader.cpp).
    table = (np.arange(256, dtype=np.float32) / np.float32(255) - mean) / std
    return torch.from_numpy(table[pixels]), torch.from_numpy(labels)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="checkpoint or exported model file (HDF5), or a "
                                           "--checkpoint-dir (its newest checkpoint is used)")
    parser.add_argument("--data", help="dataset file (HDF5) to evaluate on")
    parser.add_argument("--split", default="test", help="split of --data (default: test)")
    parser.add_argument("--samples", type=int, default=0,
                        help="evaluate the first N samples (default 0: all)")
    parser.add_argument("--batch-size", type=int, default=500, help="samples per forward")
    parser.add_argument("--logits", metavar="OUT.npy", help="save the logits [N, classes] here")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.logits and not args.data:
        parser.error("--logits needs --data")
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    path = resolve(args.checkpoint)
    model, info = load(path)
    count = sum(p.numel() for p in model.parameters())
    print(f"{path}: {info['format']} at step {info['step']}, {count} parameters")
    print(model.layers)
    if not args.data:
        return

    x, y = load_split(args.data, args.split, args.samples)
    with torch.no_grad():
        logits = torch.cat([model(x[i:i + args.batch_size])
                            for i in range(0, len(x), args.batch_size)])
    loss = nn.functional.cross_entropy(logits, y).item()
    accuracy = (logits.argmax(dim=1) == y).double().mean().item()
    print(f"{args.data}:{args.split}: accuracy {accuracy:.4f}  loss {loss:.4f}  "
          f"({len(y)} samples)")
    if args.logits:
        np.save(args.logits, logits.numpy().astype(np.float32))
        print(f"wrote {args.logits}: logits {list(logits.shape)} float32")


if __name__ == "__main__":
    main()
