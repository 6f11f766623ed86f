import torch
import torch.nn as nn


class Model(nn.Module):
    """Batched matmul, GELU, residual add of the first operand."""

    def __init__(self):
        super().__init__()
        self.act = nn.GELU()

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + self.act(torch.bmm(a, b))


batch_size = 32
rows = 512
inner = 512


def get_inputs():
    return [torch.randn(batch_size, rows, inner), torch.randn(batch_size, inner, inner)]


def get_init_inputs():
    return []
