import torch
import torch.nn as nn


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, the time embedding added in between, 1x1 shortcut when channels change."""

    def __init__(self, in_channels: int, out_channels: int, time_dim: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(8, in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time = nn.Linear(time_dim, out_channels)
        self.norm2 = nn.GroupNorm(8, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.act = nn.SiLU()
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        h = h + self.time(self.act(t))[:, :, None, None]
        h = self.conv2(self.act(self.norm2(h)))
        return self.skip(x) + h


class Model(nn.Module):
    """A diffusion UNet residual block with a time embedding (as in Stable Diffusion's ResnetBlock2D)."""

    def __init__(self, in_channels: int, out_channels: int, time_dim: int):
        super().__init__()
        self.block = ResBlock(in_channels, out_channels, time_dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.block(x, t)


batch_size = 4
in_channels = 128
out_channels = 256
time_dim = 512
height = 64
width = 64


def get_inputs():
    return [torch.randn(batch_size, in_channels, height, width), torch.randn(batch_size, time_dim)]


def get_init_inputs():
    return [in_channels, out_channels, time_dim]
