import torch
import torch.nn as nn


class Model(nn.Module):
    """A MobileNetV3 inverted residual block (inference): 1x1 expand + BN + HardSwish, 3x3 depthwise + BN +
    HardSwish, squeeze-and-excitation, 1x1 project + BN, residual."""

    def __init__(self, channels: int, expanded: int):
        super().__init__()
        self.expand = nn.Sequential(nn.Conv2d(channels, expanded, 1, bias=False), nn.BatchNorm2d(expanded),
                                    nn.Hardswish())
        self.depthwise = nn.Sequential(
            nn.Conv2d(expanded, expanded, 3, padding=1, groups=expanded, bias=False),
            nn.BatchNorm2d(expanded), nn.Hardswish())
        squeeze = max(8, expanded // 4)
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(expanded, squeeze, 1), nn.ReLU(),
                                nn.Conv2d(squeeze, expanded, 1), nn.Hardsigmoid())
        self.project = nn.Sequential(nn.Conv2d(expanded, channels, 1, bias=False), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.depthwise(self.expand(x))
        return x + self.project(h * self.se(h))


batch_size = 32
channels = 40
expanded = 240
height = 28
width = 28


def get_inputs():
    return [torch.randn(batch_size, channels, height, width)]


def get_init_inputs():
    return [channels, expanded]
