import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    """Causal SDPA over heads, merge heads, output projection, residual add."""

    def __init__(self, heads: int, head_dim: int):
        super().__init__()
        self.o_proj = nn.Linear(heads * head_dim, heads * head_dim, bias=False)

    def forward(self, q, k, v, residual):
        b, h, s, d = q.shape
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return residual + self.o_proj(out.transpose(1, 2).reshape(b, s, h * d))


batch_size = 2
heads = 16
seq_len = 1024
head_dim = 64


def get_inputs():
    shape = (batch_size, heads, seq_len, head_dim)
    return [torch.randn(shape), torch.randn(shape), torch.randn(shape),
            torch.randn(batch_size, seq_len, heads * head_dim)]


def get_init_inputs():
    return [heads, head_dim]
