#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""dptrain's gpt model in PyTorch: load a checkpoint of `train --model gpt` and evaluate it.

    scripts/python examples/gpt_pytorch.py ckpt/ --data data/shakespeare.h5 --windows 100
    scripts/python examples/gpt_pytorch.py ckpt/step-2000.h5 --data data/shakespeare.h5 \\
        --logits logits.npy

The model is nanoGPT's GPT (pre-norm blocks: x + attn(ln_1(x)), x + mlp(ln_2(x)); causal
multi-head attention; GELU in its tanh form; a head tied to the token embedding) with the same
parameter names, so a checkpoint's /model datasets ("transformer.h.0.attn.c_attn.weight", ...)
are its state_dict; lm_head.weight is transformer.wte.weight, stored once. The sizes come from the
checkpoint's config (root attribute "config", TOML: n-layer, n-head, n-embd, block-size,
vocab-size, bias).

With --data it evaluates the first --windows windows of a split of a text dataset (docs/formats.md:
window q is tokens [qT, qT + T), its targets the next T tokens, as `train eval` reads them) and
prints the mean loss and perplexity; --logits saves the logits [windows * T, vocab] as float32
.npy (compare with `train eval --logits`).

The classes are also what bench/compare_gpt.py trains with PyTorch for a side-by-side run.
"""
import argparse
import math
import os
import sys
import tomllib
from dataclasses import dataclass

import h5py
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class GPTConfig:
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 64
    vocab_size: int = 65
    dropout: float = 0.0
    bias: bool = False


class LayerNorm(nn.Module):
    """LayerNorm over the last dimension with an optional bias (torch 1.13's has no bias=False)."""

    def __init__(self, ndim, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        assert c.n_embd % c.n_head == 0
        self.c_attn = nn.Linear(c.n_embd, 3 * c.n_embd, bias=c.bias)
        self.c_proj = nn.Linear(c.n_embd, c.n_embd, bias=c.bias)
        self.attn_dropout = nn.Dropout(c.dropout)
        self.resid_dropout = nn.Dropout(c.dropout)
        self.n_head = c.n_head
        mask = torch.tril(torch.ones(c.block_size, c.block_size)).view(1, 1, c.block_size,
                                                                       c.block_size)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x):
        b, t, width = x.size()
        q, k, v = self.c_attn(x).split(width, dim=2)
        heads = lambda z: z.view(b, t, self.n_head, width // self.n_head).transpose(1, 2)
        q, k, v = heads(q), heads(k), heads(v)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.mask[:, :, :t, :t] == 0, float("-inf"))
        att = self.attn_dropout(F.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).contiguous().view(b, t, width)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c_fc = nn.Linear(c.n_embd, 4 * c.n_embd, bias=c.bias)
        self.c_proj = nn.Linear(4 * c.n_embd, c.n_embd, bias=c.bias)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.ln_1 = LayerNorm(c.n_embd, c.bias)
        self.attn = CausalSelfAttention(c)
        self.ln_2 = LayerNorm(c.n_embd, c.bias)
        self.mlp = MLP(c)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.config = c
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(c.vocab_size, c.n_embd),
            wpe=nn.Embedding(c.block_size, c.n_embd),
            drop=nn.Dropout(c.dropout),
            h=nn.ModuleList([Block(c) for _ in range(c.n_layer)]),
            ln_f=LayerNorm(c.n_embd, c.bias),
        ))
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied
        # GPT-2's initialisation, as dptrain's (nn/gpt.h).
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * c.n_layer))
            elif name.endswith(".bias"):
                nn.init.zeros_(p)
            elif "ln_" in name:
                nn.init.ones_(p)
            else:
                nn.init.normal_(p, mean=0.0, std=0.02)

    def forward(self, idx):
        t = idx.size(1)
        pos = torch.arange(0, t, dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


def text(value):
    return value.decode("utf-8") if isinstance(value, (bytes, np.bytes_)) else str(value)


def resolve(path):
    """A checkpoint directory means the checkpoint its file `latest` names."""
    if os.path.isdir(path):
        with open(os.path.join(path, "latest")) as f:
            return os.path.join(path, f.read().strip())
    return path


def config_of(toml_text):
    """The gpt's sizes from a checkpoint's resolved configuration."""
    keys = tomllib.loads(toml_text)
    if keys.get("model") != "gpt":
        sys.exit(f"the checkpoint holds model {keys.get('model')!r}, not gpt")
    return GPTConfig(n_layer=keys["n-layer"], n_head=keys["n-head"], n_embd=keys["n-embd"],
                     block_size=keys["block-size"], vocab_size=keys["vocab-size"],
                     dropout=keys.get("dropout", 0.0), bias=keys.get("bias", False))


def load_checkpoint(path):
    """(GPT with the checkpoint's weights, its config) from a dptrain checkpoint or model file."""
    with h5py.File(resolve(path), "r") as f:
        config = config_of(text(f.attrs["config"]))
        state = {name: torch.from_numpy(ds[()]) for name, ds in f["model"].items()}
    model = GPT(config)
    state["lm_head.weight"] = state["transformer.wte.weight"]  # stored once: tied
    model.load_state_dict(state, strict=True)
    return model, config


def read_windows(path, split, block_size, windows):
    """Inputs [n, T] and targets [n, T] of the first `windows` evaluation windows of a split."""
    with h5py.File(path, "r") as f:
        tokens = f[split]["tokens"][()].astype(np.int64)
    n = (len(tokens) - 1) // block_size
    if windows > 0:
        n = min(n, windows)
    idx = np.arange(n)[:, None] * block_size + np.arange(block_size)[None, :]
    return torch.from_numpy(tokens[idx]), torch.from_numpy(tokens[idx + 1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="checkpoint or model file, or a checkpoint directory")
    parser.add_argument("--data", help="text dataset file to evaluate on")
    parser.add_argument("--split", default="test")
    parser.add_argument("--windows", type=int, default=0, help="first N windows (0 = all)")
    parser.add_argument("--logits", help="save the logits [windows * T, vocab] as .npy")
    args = parser.parse_args()
    torch.manual_seed(0)
    model, config = load_checkpoint(args.checkpoint)
    model.eval()
    print(f"gpt: {sum(p.numel() for p in model.parameters())} parameters, {config}")
    if not args.data:
        return
    x, y = read_windows(args.data, args.split, config.block_size, args.windows)
    with torch.no_grad():
        logits = torch.cat([model(x[i:i + 256]) for i in range(0, len(x), 256)])
    rows = logits.view(-1, logits.size(-1))
    loss = F.cross_entropy(rows.double(), y.reshape(-1), reduction="mean").item()
    accuracy = (rows.argmax(dim=1) == y.reshape(-1)).double().mean().item()
    print(f"{args.split}: loss {loss:.4f}  perplexity {math.exp(loss):.3f}  accuracy "
          f"{accuracy:.4f}  ({rows.size(0)} tokens)")
    if args.logits:
        np.save(args.logits, rows.numpy().astype(np.float32))


if __name__ == "__main__":
    main()
