"""`mpskernels demo`: optimize a small LLaMA-style decoder and show what happened.

The model is written the way model code writes it (an RMSNorm spelled out, a gated SiLU MLP, attention through
scaled_dot_product_attention, a LayerNorm'd classifier head), so optimize() has to recognise the computations,
not just module types. On a Mac the kernels run on the GPU; elsewhere they run, unchanged, on the CPU emulator.
The report lists every swap and its check, and the model's output is compared with the original's.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from .optimize import optimize, restore
from .runtime import use_backend


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.variance_epsilon = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        h = hidden_states.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return (self.weight * h).to(hidden_states.dtype)


class GatedMLP(nn.Module):
    def __init__(self, size: int, hidden: int):
        super().__init__()
        self.gate_proj = nn.Linear(size, hidden, bias=False)
        self.up_proj = nn.Linear(size, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, size, bias=False)
        self.act_fn = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class SelfAttention(nn.Module):
    def __init__(self, size: int, heads: int, kv_heads: int):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, size // heads
        self.q_proj = nn.Linear(size, size, bias=False)
        self.kv_proj = nn.Linear(size, 2 * kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(size, size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        q = self.q_proj(x).view(b, s, self.heads, self.head_dim).transpose(1, 2)
        k, v = self.kv_proj(x).view(b, s, 2, self.kv_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        repeat = self.heads // self.kv_heads
        k, v = k.repeat_interleave(repeat, 1), v.repeat_interleave(repeat, 1)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(out.transpose(1, 2).reshape(b, s, -1))


class DecoderLayer(nn.Module):
    def __init__(self, size: int, heads: int, kv_heads: int, hidden: int):
        super().__init__()
        self.input_layernorm = RMSNorm(size)
        self.self_attn = SelfAttention(size, heads, kv_heads)
        self.post_attention_layernorm = RMSNorm(size)
        self.mlp = GatedMLP(size, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x))
        return x + self.mlp(self.post_attention_layernorm(x))


class TinyDecoder(nn.Module):
    # Head dim 64 (128 / 2): a size the attention kernel has, so optimize() routes the attention too.
    def __init__(self, vocab: int = 128, size: int = 128, layers: int = 2, heads: int = 2, kv_heads: int = 1,
                 hidden: int = 352):
        super().__init__()
        self.embed = nn.Embedding(vocab, size)
        self.layers = nn.ModuleList(DecoderLayer(size, heads, kv_heads, hidden) for _ in range(layers))
        self.norm = RMSNorm(size)
        self.head = nn.Sequential(nn.Linear(size, size), nn.GELU(), nn.LayerNorm(size), nn.Linear(size, vocab))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)
        for layer in self.layers:
            x = layer(x)
        return self.head(self.norm(x))


def run_demo(verbose: bool = False) -> int:
    on_mac = torch.backends.mps.is_available()
    device = "mps" if on_mac else "cpu"
    backend = None if on_mac else "emulator"
    torch.manual_seed(0)
    model = TinyDecoder().to(device).eval()
    ids = torch.randint(0, 128, (2, 17), device=device)
    with torch.no_grad():
        expected = model(ids)
    where = "the GPU (MPS)" if on_mac else "the CPU emulator (no Apple GPU here: same .metal files, emulated)"
    print(f"mpskernels demo: a {sum(p.numel() for p in model.parameters()) / 1e3:.0f}k-parameter LLaMA-style "
          f"decoder, kernels on {where}\n")
    start = time.perf_counter()
    with torch.no_grad(), (use_backend(backend) if backend else _nothing()):
        optimize(model, example_inputs=(ids,))
        got = model(ids)
    report = model.mpskernels_report
    print(report)
    print(f"\noptimize() and one forward pass took {time.perf_counter() - start:.1f}s "
          f"(includes compiling the kernels{'' if on_mac else ' for the emulator'}; timings are not speeds)")
    same = torch.allclose(got, expected, rtol=1e-4, atol=1e-4)
    print(f"logits match the original model: {same} (max abs difference {(got - expected).abs().max():.2e})")
    restore(model)
    ok = same and not report.rolled_back and bool(report.swapped)
    print("demo passed" if ok else "demo FAILED")
    return 0 if ok else 1


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False
