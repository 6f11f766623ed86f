"""optimize() and the compile backend on plain-PyTorch architectures: a ResNet-style CNN (Conv-BN-ReLU) and a
UNet-style block (GroupNorm + SiLU)."""

import pytest
import torch
from torch import nn

import mpskernels
from mpskernels.optimize import restore, swapped_modules

from .checks import check_optimize


class ResidualBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels),
        )
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(x + self.body(x))


def resnet():
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        ResidualBlock(8), ResidualBlock(8),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10),
    )
    for m in net.modules():  # non-trivial running statistics, as a trained network has
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return net.eval(), (torch.randn(2, 3, 16, 16),)


class UNetBlock(nn.Module):
    """A diffusion-UNet residual block: GroupNorm -> SiLU -> Conv, twice, with a time embedding and a skip."""

    def __init__(self, channels, time_dim):
        super().__init__()
        self.norm1, self.act1 = nn.GroupNorm(4, channels), nn.SiLU()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.time = nn.Sequential(nn.SiLU(), nn.Linear(time_dim, channels))
        self.norm2, self.act2 = nn.GroupNorm(4, channels), nn.SiLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x, t):
        h = self.conv1(self.act1(self.norm1(x)))
        h = h + self.time(t)[:, :, None, None]
        return x + self.conv2(self.act2(self.norm2(h)))


def unet():
    return UNetBlock(16, 32).eval(), (torch.randn(2, 16, 8, 8), torch.randn(2, 32))


MODELS = {
    "resnet": (resnet, {"fold_conv_batchnorm": 10}),  # 5 Conv+BN pairs, each counted for both modules
    "unet": (unet, {"group_norm": 2, "silu": 3}),
}


@pytest.fixture
def emulator():
    with torch.no_grad(), mpskernels.use_backend("emulator"):
        yield


@pytest.mark.parametrize("name", MODELS)
def test_optimize_swaps_the_expected_modules_and_keeps_the_outputs(name, emulator):
    build, expected = MODELS[name]
    torch.manual_seed(0)
    model, inputs = build()
    check_optimize(model, inputs, expected)


def test_folded_weights_follow_parameter_updates(emulator):
    model, inputs = resnet()
    mpskernels.optimize(model)
    model[1].running_var.mul_(4.0)  # the folded convolution must see this
    optimized = model(*inputs)
    restore(model)
    torch.testing.assert_close(optimized, model(*inputs), rtol=1e-4, atol=1e-5)


def test_batch_norm_in_training_mode_is_not_folded(emulator):
    model, _ = resnet()
    model[1].train()
    mpskernels.optimize(model)
    assert "1" not in swapped_modules(model) and "0" not in swapped_modules(model)
    assert any(e.module == "1" and "batch statistics" in e.detail for e in model.mpskernels_report.skipped)


@pytest.mark.parametrize("name", MODELS)
def test_compile_backend_gives_the_same_result(name, emulator):
    build, _ = MODELS[name]
    torch.manual_seed(0)
    model, inputs = build()
    torch._dynamo.reset()
    torch.testing.assert_close(torch.compile(model, backend="mpskernels")(*inputs), model(*inputs),
                               rtol=1e-4, atol=1e-5)
    torch._dynamo.reset()
