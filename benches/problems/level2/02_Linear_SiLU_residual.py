import torch
import torch.nn as nn


class Model(nn.Module):
    """Linear layer, SiLU, then a residual add of the input (square layer)."""

    def __init__(self, features: int):
        super().__init__()
        self.linear = nn.Linear(features, features)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.act(self.linear(x))


tokens = 2048
features = 4096


def get_inputs():
    return [torch.randn(tokens, features)]


def get_init_inputs():
    return [features]
