#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# Writes the PyTorch reference fixtures of transformer_test.cpp into tests/kernels/fixtures/:
# embedding (repeated tokens), layer norm (with and without bias), GELU (tanh form) and causal
# self-attention computed the nanoGPT way, each with its gradients for a fixed seed.
# Run with PyTorch 1.13: /usr/bin/python3 tests/kernels/make_transformer_fixtures.py
#
# Format (text): per tensor a line "name d0,d1,..." and a line of its values in row-major order,
# each printed with 9 significant digits (enough to read back the same float).
import math
import os

import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def write(name, tensors):
    with open(os.path.join(OUT, name), "w") as f:
        f.write(f"# {name}: written by make_transformer_fixtures.py (torch {torch.__version__})\n")
        for key, t in tensors.items():
            t = t.detach().contiguous()
            f.write(key + " " + ",".join(str(d) for d in t.shape) + "\n")
            values = t.reshape(-1).tolist()
            f.write(" ".join(f"{float(v):.9g}" if t.is_floating_point() else str(int(v))
                             for v in values) + "\n")


def embedding():
    torch.manual_seed(1)
    V, C, P, B, T = 7, 8, 6, 2, 5
    tokens = torch.tensor([[1, 3, 3, 0, 6], [3, 1, 1, 2, 3]], dtype=torch.int32)
    wte = torch.randn(V, C, requires_grad=True)
    wpe = torch.randn(P, C, requires_grad=True)
    y = F.embedding(tokens.long(), wte) + wpe[:T]
    dy = torch.randn(B, T, C)
    y.backward(dy)
    write("embedding.txt", {"tokens": tokens, "wte": wte, "wpe": wpe, "y": y, "dy": dy,
                            "dwte": wte.grad, "dwpe": wpe.grad})


def layer_norm():
    torch.manual_seed(2)
    B, T, C, eps = 2, 5, 8, 1e-5
    x = (torch.randn(B, T, C) * 2.0 + 0.5).requires_grad_()
    gamma = torch.randn(C, requires_grad=True)
    beta = torch.randn(C, requires_grad=True)
    dy = torch.randn(B, T, C)
    y = F.layer_norm(x, (C,), gamma, beta, eps)
    y.backward(dy)
    mean = x.detach().mean(-1)
    rstd = 1.0 / torch.sqrt(x.detach().var(-1, unbiased=False) + eps)
    out = {"x": x, "gamma": gamma, "beta": beta, "dy": dy, "y": y, "mean": mean, "rstd": rstd,
           "dx": x.grad, "dgamma": gamma.grad, "dbeta": beta.grad}
    x2 = x.detach().clone().requires_grad_()
    gamma2 = gamma.detach().clone().requires_grad_()
    y2 = F.layer_norm(x2, (C,), gamma2, None, eps)
    y2.backward(dy)
    out.update({"y_nobias": y2, "dx_nobias": x2.grad, "dgamma_nobias": gamma2.grad})
    write("layer_norm.txt", out)


def gelu():
    torch.manual_seed(3)
    x = torch.cat([torch.linspace(-6.0, 6.0, 49), torch.randn(31) * 2.0,
                   torch.tensor([0.0, 1e-4, -1e-4, 10.0, -10.0])]).requires_grad_()
    dy = torch.randn_like(x)
    y = F.gelu(x, approximate="tanh")
    y.backward(dy)
    write("gelu.txt", {"x": x, "dy": dy, "y": y, "dx": x.grad})


def attention():
    torch.manual_seed(4)
    B, T, C, nh = 2, 5, 8, 2
    qkv = torch.randn(B, T, 3 * C, requires_grad=True)
    # nanoGPT's CausalSelfAttention.forward between c_attn and c_proj (dropout 0).
    q, k, v = qkv.split(C, dim=2)
    k = k.view(B, T, nh, C // nh).transpose(1, 2)
    q = q.view(B, T, nh, C // nh).transpose(1, 2)
    v = v.view(B, T, nh, C // nh).transpose(1, 2)
    bias = torch.tril(torch.ones(T, T)).view(1, 1, T, T)
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
    att = att.masked_fill(bias[:, :, :T, :T] == 0, float("-inf"))
    att = F.softmax(att, dim=-1)
    att.retain_grad()
    y = att @ v
    y = y.transpose(1, 2).contiguous().view(B, T, C)
    dy = torch.randn(B, T, C)
    y.backward(dy)
    write("attention.txt", {"qkv": qkv, "dy": dy, "y": y, "att": att, "dqkv": qkv.grad})


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    embedding()
    layer_norm()
    gelu()
    attention()
