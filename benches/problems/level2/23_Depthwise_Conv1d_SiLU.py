import torch
import torch.nn as nn


class Model(nn.Module):
    """Causal depthwise 1-D convolution over the sequence, then SiLU (the short conv of Mamba-style blocks)."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel_size, groups=channels, padding=kernel_size - 1)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x)[..., : x.shape[-1]])


batch_size = 16
channels = 2048
kernel_size = 4
seq_len = 1024


def get_inputs():
    return [torch.randn(batch_size, channels, seq_len)]


def get_init_inputs():
    return [channels, kernel_size]
