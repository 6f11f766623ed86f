import torch
import torch.nn as nn


class Model(nn.Module):
    """Classifier head: LayerNorm, Linear to the classes, LogSoftmax."""

    def __init__(self, hidden: int, classes: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden, classes)
        self.log_softmax = nn.LogSoftmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.log_softmax(self.head(self.norm(x)))


tokens = 4096
hidden = 1024
classes = 8192


def get_inputs():
    return [torch.randn(tokens, hidden)]


def get_init_inputs():
    return [hidden, classes]
