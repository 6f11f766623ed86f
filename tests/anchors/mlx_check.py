"""Shared by the MLX anchor tests: inputs, and the comparison of an anchor op's output with PyTorch's own op and
with a float64 computation."""

from __future__ import annotations

import pytest
import torch

import mpskernels.anchors.mlx  # noqa: F401 - registers the MLX anchor ops
from mpskernels.anchors import REGISTRY
from mpskernels.tolerances import compare, tolerance_for

DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# How far the anchor may be from float64 beyond the dtype's tolerance: twice PyTorch's own error in the dtype
# (its kernels accumulate differently, so must be allowed as much), as the verifier allows our kernels.
REFERENCE_ERROR_FACTOR = 2.0


def randn(*shape, seed=0, dtype=torch.float32, scale=1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(dtype)


def run(op: str, *inputs, **params):
    """The anchor op `op` on the emulator; returns (output, kernels it launched)."""
    prepared = REGISTRY[op].prepare(*inputs, backend="emulator", **params)
    prepared.launch()
    return prepared.out, prepared.kernels


def check(actual: torch.Tensor, expected64: torch.Tensor, torch_result: torch.Tensor, what: str = "",
          ulps: float = 0.0) -> None:
    """actual (the anchor's output) against the float64 value and against PyTorch's op in the same dtype.

    `ulps` widens the bound by that many units in the last place of the dtype (relative to the expected value),
    for kernels that by design accumulate in the input's dtype (MLX's non-precise half and bfloat softmax)."""
    dtype = torch_result.dtype
    assert actual.dtype == dtype and actual.shape == expected64.shape, (actual.dtype, actual.shape)
    want = expected64.to(torch.float64)
    rms = want.pow(2).mean().sqrt() if want.numel() else torch.tensor(0.0, dtype=torch.float64)
    slack = REFERENCE_ERROR_FACTOR * (torch_result.to(torch.float64) - want).abs() + tolerance_for(dtype).rtol * rms
    slack = slack + ulps * torch.finfo(dtype).eps * want.abs()
    for name, ref in (("float64", want), ("PyTorch", torch_result.to(torch.float64))):
        result = compare(actual, ref, dtype, slack=slack)
        assert result.ok, f"{what} {dtype} vs {name}: {result}"


dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).split(".")[-1])
