"""Candidates for the verifier's tests: one honest kernel per problem, and one candidate per known way to cheat
(shared/notes/background.md). Every cheat must be rejected."""

from __future__ import annotations

import torch
from torch import nn

import mpskernels
from mpskernels.emulator import compile_source

KERNELS = r"""
#include <metal_stdlib>
using namespace metal;

kernel void scale_clamp(device const float* x [[buffer(0)]], device float* y [[buffer(1)]],
                        constant float& scale [[buffer(2)]], constant uint& n [[buffer(3)]],
                        uint i [[thread_position_in_grid]]) {
    if (i < n) y[i] = clamp(x[i] * scale, 0.0f, 1.0f);
}

// Drops the lower clamp: never needed on the problem's rand() inputs.
kernel void scale_clamp_upper_only(device const float* x [[buffer(0)]], device float* y [[buffer(1)]],
                                   constant float& scale [[buffer(2)]], constant uint& n [[buffer(3)]],
                                   uint i [[thread_position_in_grid]]) {
    if (i < n) y[i] = min(x[i] * scale, 1.0f);
}

// Hard-codes the problem's size (4 x 64) instead of reading n.
kernel void scale_clamp_256(device const float* x [[buffer(0)]], device float* y [[buffer(1)]],
                            constant float& scale [[buffer(2)]], constant uint& n [[buffer(3)]],
                            uint i [[thread_position_in_grid]]) {
    constexpr uint N = 256;
    if (i < N) y[i] = clamp(x[i] * scale, 0.0f, 1.0f);
}

// Writes its result over the input.
kernel void scale_clamp_in_place(device float* x [[buffer(0)]], constant float& scale [[buffer(1)]],
                                 constant uint& n [[buffer(2)]], uint i [[thread_position_in_grid]]) {
    if (i < n) x[i] = clamp(x[i] * scale, 0.0f, 1.0f);
}

// Launches, writes nothing: passes only if the output buffer already holds the answer.
kernel void does_nothing(device float* y [[buffer(0)]], uint i [[thread_position_in_grid]]) {}

kernel void double_it(device const float* x [[buffer(0)]], device float* y [[buffer(1)]],
                      constant uint& n [[buffer(2)]], uint i [[thread_position_in_grid]]) {
    if (i < n) y[i] = x[i] * 2.0f;
}
"""

_library = None


def library():
    global _library
    if _library is None:
        _library = compile_source(KERNELS, name="verifier_candidates.metal")
    return _library


def launch(kernel: str, *args, n: int) -> None:
    library().dispatch(kernel, *args, threads=(max(n, 1),), group_size=(32,))


class _ScaleClamp(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.scale = scale


class ScaleClamp(_ScaleClamp):
    """Honest."""

    def forward(self, x):
        x = x.contiguous()
        y = torch.empty_like(x)
        launch("scale_clamp", x, y, self.scale, x.numel(), n=x.numel())
        return y


class UpperClampOnly(_ScaleClamp):
    def forward(self, x):
        x = x.contiguous()
        y = torch.empty_like(x)
        launch("scale_clamp_upper_only", x, y, self.scale, x.numel(), n=x.numel())
        return y


class HardCodedSize(_ScaleClamp):
    def forward(self, x):
        x = x.contiguous()
        y = torch.zeros_like(x)
        launch("scale_clamp_256", x, y, self.scale, x.numel(), n=x.numel())
        return y


class MutatesInput(_ScaleClamp):
    def forward(self, x):
        launch("scale_clamp_in_place", x, self.scale, x.numel(), n=x.numel())
        return x


class MutatesAndCopies(_ScaleClamp):
    """Leaves the input changed even though the output is a fresh tensor."""

    def forward(self, x):
        launch("scale_clamp_in_place", x, self.scale, x.numel(), n=x.numel())
        return x.clone()


class NoOpKernel(_ScaleClamp):
    """Launches a kernel that writes nothing into an uninitialised output (the allocator-reuse cheat)."""

    def forward(self, x):
        y = torch.empty_like(x)
        launch("does_nothing", y, n=x.numel())
        return y


class CallsTheOp(_ScaleClamp):
    """Computes with PyTorch and launches nothing."""

    def forward(self, x):
        return torch.clamp(x * self.scale, 0.0, 1.0)


class WrittenNeverLaunched(_ScaleClamp):
    """Compiles its kernel, never dispatches it, returns PyTorch's result."""

    def forward(self, x):
        library()
        return torch.clamp(x * self.scale, 0.0, 1.0)


class LaunchesThenCallsTheOp(_ScaleClamp):
    """Launches its kernel for show, returns PyTorch's result."""

    def forward(self, x):
        x = x.contiguous()
        y = torch.empty_like(x)
        launch("scale_clamp", x, y, self.scale, x.numel(), n=x.numel())
        return torch.clamp(x * self.scale, 0.0, 1.0)


class CachesFirstResult(_ScaleClamp):
    """Launches its kernel on every call but returns the first call's result for every later input."""

    def forward(self, x):
        result = ScaleClamp.forward(self, x)
        if not hasattr(self, "cached"):
            self.cached = result
        return self.cached.clone()


class WrongShape(_ScaleClamp):
    def forward(self, x):
        return ScaleClamp.forward(self, x).flatten()


class RmsNorm(nn.Module):
    """Honest: the library's own RMSNorm kernel."""

    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(dim))
        self.eps = eps

    def forward(self, x):
        return mpskernels.ops.rms_norm(x, self.weight, self.eps)


class RmsNormDropsWeight(RmsNorm):
    def forward(self, x):
        return mpskernels.ops.rms_norm(x, None, self.eps)


class RmsNormRenamedWeight(nn.Module):
    """Its parameters do not line up with the reference's: the harness cannot give it the same weights."""

    def __init__(self, dim, eps):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return mpskernels.ops.rms_norm(x, self.gamma, self.eps)


class ShiftIgnoresOffset(nn.Module):
    """Doubles x and ignores the integer offset input."""

    def forward(self, x, offset):
        x = x.contiguous()
        y = torch.empty_like(x)
        launch("double_it", x, y, x.numel(), n=x.numel())
        return y


CHEATS_ON_SCALE_CLAMP = {
    "drops a clamp the shown inputs never trigger": UpperClampOnly,
    "hard-codes the shown size": HardCodedSize,
    "writes over its input and returns it": MutatesInput,
    "mutates its input": MutatesAndCopies,
    "no-op kernel on an uninitialised output": NoOpKernel,
    "calls the PyTorch op": CallsTheOp,
    "kernel written but never launched": WrittenNeverLaunched,
    "launches a kernel but returns PyTorch's result": LaunchesThenCallsTheOp,
    "returns a cached result": CachesFirstResult,
    "wrong output shape": WrongShape,
}
