#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# Writes tests/nn/fixtures/autocast_bf16.txt: Linear and Conv2d (with and without a fused ReLU)
# forward and backward under PyTorch's CPU autocast in bf16, the reference of
# precision_test.cpp's MixedPrecisionAutocast. Run with PyTorch 1.13:
#   /usr/bin/python3 tests/nn/make_autocast_fixtures.py
#
# Under torch.autocast("cpu", dtype=torch.bfloat16) linear and conv2d cast their input, weight and
# bias to bf16 and return bf16; ReLU then runs on bf16. The backward takes the output gradient in
# bf16, and each f32 leaf's gradient is the bf16 gradient widened. Inputs, parameters and the
# output gradient are written in f32 (as dptrain receives them); outputs and gradients as PyTorch
# returns them (the bf16 ones widened to f32, exactly).
#
# Format (text, as tests/kernels/make_transformer_fixtures.py): per tensor a line
# "name d0,d1,..." and a line of its values in row-major order, 9 significant digits.
import os

import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "autocast_bf16.txt")


def case(prefix, op, x, w, b, relu, seed):
    x = x.clone().requires_grad_()
    w = w.clone().requires_grad_()
    b = b.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = op(x, w, b)
        if relu:
            y = F.relu(y)
    assert y.dtype == torch.bfloat16, y.dtype
    g = torch.Generator().manual_seed(seed)
    dy = torch.randn(y.shape, generator=g)
    y.backward(dy.to(torch.bfloat16))
    return {f"{prefix}.x": x, f"{prefix}.w": w, f"{prefix}.b": b, f"{prefix}.dy": dy,
            f"{prefix}.y": y.float(), f"{prefix}.dx": x.grad, f"{prefix}.dw": w.grad,
            f"{prefix}.db": b.grad}


def main():
    g = torch.Generator().manual_seed(17)
    tensors = {}
    # Linear(37 -> 19) on a batch of 6; values of order 1, so sums of 37 products are of order 6.
    lx, lw, lb = (torch.randn(s, generator=g) for s in ((6, 37), (19, 37), (19,)))
    tensors.update(case("linear", F.linear, lx, lw, lb, False, 1))
    tensors.update(case("linear_relu", F.linear, lx, lw, lb, True, 2))
    # Conv2d(3 -> 5, 3x3), stride 1 pad 1 and stride 2 pad 0, on 4 images of 9x7 and 9x11.
    cw, cb = torch.randn(5, 3, 3, 3, generator=g), torch.randn(5, generator=g)
    cx1, cx2 = torch.randn(4, 3, 9, 7, generator=g), torch.randn(4, 3, 9, 11, generator=g)
    tensors.update(case("conv", lambda x, w, b: F.conv2d(x, w, b, 1, 1), cx1, cw, cb, False, 3))
    tensors.update(case("conv_relu", lambda x, w, b: F.conv2d(x, w, b, 2, 0), cx2, cw, cb, True,
                        4))
    with open(OUT, "w") as f:
        f.write(f"# autocast_bf16.txt: written by make_autocast_fixtures.py (torch "
                f"{torch.__version__})\n")
        for key, t in tensors.items():
            t = t.detach().contiguous()
            f.write(key + " " + ",".join(str(d) for d in t.shape) + "\n")
            f.write(" ".join(f"{float(v):.9g}" for v in t.reshape(-1).tolist()) + "\n")


if __name__ == "__main__":
    main()
