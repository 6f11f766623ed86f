"""optimize() recognises modules by what they compute, not only by their class.

Run: python examples/custom_module.py
`MyNorm` is an RMSNorm written by hand and `Swish` is SiLU under another name; neither class is known to
mpskernels. optimize() proposes a kernel from their parameters and attributes and accepts it only after the
module's own forward and the kernel agree on probe inputs of several shapes and value distributions.
"""

import contextlib

import torch
from torch import nn

import mpskernels


class MyNorm(nn.Module):
    def __init__(self, size, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x):
        return self.weight * x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)


class Swish(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x)


class Cube(nn.Module):  # not an activation mpskernels has: it stays as it is
    def forward(self, x):
        return x**3


model = nn.Sequential(nn.Linear(32, 32), MyNorm(32), Swish(), Cube(), nn.Linear(32, 8)).eval()
on_mac = torch.backends.mps.is_available()
with torch.no_grad(), (contextlib.nullcontext() if on_mac else mpskernels.use_backend("emulator")):
    mpskernels.optimize(model, example_inputs=(torch.randn(4, 32),))
print(model.mpskernels_report)
