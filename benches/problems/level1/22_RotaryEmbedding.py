import torch
import torch.nn as nn


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Model(nn.Module):
    """Rotary position embedding (rotate_half form, as in LLaMA) applied to queries and keys."""

    def __init__(self, head_dim: int, seq_len: int, base: float = 10000.0):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2).float() / head_dim))
        freqs = torch.outer(torch.arange(seq_len).float(), inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.register_buffer("cos", emb.cos())
        self.register_buffer("sin", emb.sin())

    def forward(self, q: torch.Tensor, k: torch.Tensor):
        cos, sin = self.cos[: q.shape[-2]], self.sin[: q.shape[-2]]
        return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


batch_size = 4
heads = 16
seq_len = 1024
head_dim = 128


def get_inputs():
    q = torch.randn(batch_size, heads, seq_len, head_dim)
    k = torch.randn(batch_size, heads, seq_len, head_dim)
    return [q, k]


def get_init_inputs():
    return [head_dim, seq_len]
