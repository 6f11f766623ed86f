import torch
import torch.nn as nn


class Model(nn.Module):
    """A pre-norm vision transformer (ViT-L) block: LayerNorm, nn.MultiheadAttention, residual, LayerNorm,
    GELU MLP, residual."""

    def __init__(self, heads: int, head_dim: int):
        super().__init__()
        hidden = heads * head_dim
        self.norm1 = nn.LayerNorm(hidden, eps=1e-6)
        self.attn = nn.MultiheadAttention(hidden, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(hidden, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(hidden, 4 * hidden), nn.GELU(), nn.Linear(4 * hidden, hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


batch_size = 8
patches = 256
heads = 16
head_dim = 64


def get_inputs():
    return [torch.randn(batch_size, patches, heads * head_dim)]


def get_init_inputs():
    return [heads, head_dim]
