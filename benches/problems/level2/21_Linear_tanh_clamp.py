import torch
import torch.nn as nn


class Model(nn.Module):
    """Linear, tanh, scale by 2 and clamp to [-1, 1]."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(torch.tanh(self.linear(x)) * 2.0, -1.0, 1.0)


tokens = 2048
in_features = 2048
out_features = 4096


def get_inputs():
    return [torch.randn(tokens, in_features)]


def get_init_inputs():
    return [in_features, out_features]
