import torch
import torch.nn as nn


class Model(nn.Module):
    """nn.TransformerEncoderLayer (post-norm, GELU feed-forward, batch first) in inference mode."""

    def __init__(self, heads: int, head_dim: int, feedforward: int):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(heads * head_dim, heads, feedforward, dropout=0.0,
                                                activation="gelu", batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


batch_size = 8
seq_len = 512
heads = 8
head_dim = 64
feedforward = 2048


def get_inputs():
    return [torch.randn(batch_size, seq_len, heads * head_dim)]


def get_init_inputs():
    return [heads, head_dim, feedforward]
