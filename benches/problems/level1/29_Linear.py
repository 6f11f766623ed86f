import torch
import torch.nn as nn


class Model(nn.Module):
    """A linear layer with bias on (tokens, in_features) activations."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


tokens = 2048
in_features = 4096
out_features = 4096


def get_inputs():
    return [torch.randn(tokens, in_features)]


def get_init_inputs():
    return [in_features, out_features]
