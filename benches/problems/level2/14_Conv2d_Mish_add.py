import torch
import torch.nn as nn


class Model(nn.Module):
    """Convolution, Mish, add a constant, Mish again (KernelBench-style chain)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.act = nn.Mish()
        self.shift = 0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.act(self.conv(x)) + self.shift)


batch_size = 16
in_channels = 32
out_channels = 64
kernel_size = 3
height = 128
width = 128


def get_inputs():
    return [torch.randn(batch_size, in_channels, height, width)]


def get_init_inputs():
    return [in_channels, out_channels, kernel_size]
