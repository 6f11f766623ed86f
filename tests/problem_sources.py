"""Small KernelBench-format problems for the verifier's tests, as source text."""

SCALE_CLAMP = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return torch.clamp(x * self.scale, 0.0, 1.0)


batch_size = 4
dim = 64


def get_inputs():
    return [torch.rand(batch_size, dim)]


def get_init_inputs():
    return [2.0]
'''

RMS_NORM = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.rand(dim) + 0.5)
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


batch_size = 3
dim = 48


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return [dim, 1e-6]
'''

# Two inputs, the second an integer tensor: input distributions leave it as drawn, so only the input-sensitivity
# check sees a candidate that ignores it.
SHIFT_BY_OFFSET = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x, offset):
        return x * 2.0 + offset.to(x.dtype)


batch_size = 4
dim = 32


def get_inputs():
    return [torch.rand(batch_size, dim), torch.randint(0, 3, (batch_size, dim))]


def get_init_inputs():
    return []
'''

# Large inputs through a convolution: outputs near zero come from cancellation and carry the rounding error of the
# (large) terms, which an element-wise relative tolerance alone would call a mismatch.
CONV_BATCHNORM = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)
        self.bn.running_mean.uniform_(-1, 1)
        self.bn.running_var.uniform_(0.5, 2)

    def forward(self, x):
        return self.bn(self.conv(x))


batch_size = 4
channels = 16
size = 12


def get_inputs():
    return [torch.randn(batch_size, channels, size, size)]


def get_init_inputs():
    return [channels]
'''
