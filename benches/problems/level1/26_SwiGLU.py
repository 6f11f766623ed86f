import torch
import torch.nn as nn


class Model(nn.Module):
    """SwiGLU: silu(gate) * up, gate and up the two halves of the input."""

    def __init__(self):
        super().__init__()
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = x.chunk(2, dim=-1)
        return self.act(gate) * up


batch_size = 16
seq_len = 256
hidden = 8192


def get_inputs():
    return [torch.randn(batch_size, seq_len, 2 * hidden)]


def get_init_inputs():
    return []
