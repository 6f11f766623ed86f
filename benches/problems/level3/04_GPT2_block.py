import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    """A GPT-2 (medium) block: LayerNorm, causal multi-head attention (fused QKV), residual, LayerNorm,
    GELU (tanh) MLP, residual."""

    def __init__(self, heads: int, head_dim: int):
        super().__init__()
        hidden = heads * head_dim
        self.heads, self.head_dim = heads, head_dim
        self.ln_1 = nn.LayerNorm(hidden)
        self.c_attn = nn.Linear(hidden, 3 * hidden)
        self.c_proj = nn.Linear(hidden, hidden)
        self.ln_2 = nn.LayerNorm(hidden)
        self.mlp = nn.Sequential(nn.Linear(hidden, 4 * hidden), nn.GELU(approximate="tanh"),
                                 nn.Linear(4 * hidden, hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, c = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).view(b, s, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.c_proj(attn.transpose(1, 2).reshape(b, s, c))
        return x + self.mlp(self.ln_2(x))


batch_size = 4
seq_len = 1024
heads = 16
head_dim = 64


def get_inputs():
    return [torch.randn(batch_size, seq_len, heads * head_dim)]


def get_init_inputs():
    return [heads, head_dim]
