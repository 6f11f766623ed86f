"""Use mpskernels through torch.compile: `torch.compile(model, backend="mpskernels")`.

Run: python examples/compile_backend.py
The backend rewrites the computations it has kernels for (hand-written RMSNorm, SiLU, GELU, softmax, attention
through scaled_dot_product_attention, ...) into mpskernels ops and lets Inductor compile the rest.
options={"verify": True} checks the first call against eager and falls back to eager if they disagree.
"""

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

import mpskernels


class Block(nn.Module):
    def __init__(self, size=64, heads=4):
        super().__init__()
        self.heads = heads
        self.norm_weight = nn.Parameter(torch.ones(size))
        self.qkv = nn.Linear(size, 3 * size)
        self.out = nn.Linear(size, size)

    def forward(self, x):
        h = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.norm_weight  # RMSNorm, written out
        b, s, d = h.shape
        q, k, v = self.qkv(h).view(b, s, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return x + F.silu(self.out(attn.transpose(1, 2).reshape(b, s, d)))


model = Block().eval()
x = torch.randn(2, 16, 64)
# No Apple GPU: run the same Metal kernels on the CPU emulator.
on_mac = torch.backends.mps.is_available()
with torch.no_grad(), (contextlib.nullcontext() if on_mac else mpskernels.use_backend("emulator")):
    compiled = torch.compile(model, backend="mpskernels", options={"verify": True})
    print("max difference from eager:", (compiled(x) - model(x)).abs().max().item())
