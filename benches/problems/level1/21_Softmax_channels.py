import torch
import torch.nn as nn


class Model(nn.Module):
    """Softmax over the channels of an image batch (dim 1 of NCHW)."""

    def __init__(self):
        super().__init__()
        self.op = nn.Softmax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


batch_size = 16
channels = 64
height = 128
width = 128



def get_inputs():
    return [torch.randn(batch_size, channels, height, width)]


def get_init_inputs():
    return []
