"""The float64 oracle's two adjustments, so that it answers what the op's dtype would answer if it were exact:

- tensors a model creates inside forward without naming a dtype (KernelBench's LSTM draws its initial state with
  `torch.randn(...)` there) are made as the reference makes them, in the default dtype, and then widened to
  float64. The oracle sees exactly the numbers the reference sees (the forward RNG is seeded alike before every
  call), instead of float32 tensors meeting float64 weights;
- expected values beyond the dtype's range are what the dtype's own computation gives there, an infinity of that
  sign (KernelBench's cumprod reaches -9e38, which float32 holds only as -inf). Values in range keep every bit of
  float64 precision.

A model that still cannot run in float64 is a failure of the harness, never of the candidate (OracleFailure).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map

# The global RNG is seeded with this before every call of the oracle, the reference and the candidate, so a model
# that draws random numbers inside forward draws the same ones in all three.
FORWARD_SEED = 20_240_917


class OracleFailure(Exception):
    """The float64 oracle could not compute the expected output: the harness cannot judge the candidate."""


class WidenCreatedTensors(TorchFunctionMode):
    """Inside the oracle: a floating-point tensor made from no tensor (a factory call such as torch.randn, zeros,
    tensor) without an explicit dtype is made in the default dtype, as the reference makes it, then widened to
    float64. Tensors derived from inputs or weights are float64 already and pass through."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if "dtype" in kwargs or any(isinstance(a, torch.Tensor) for a in tree_flatten((args, kwargs))[0]):
            return out
        return tree_map(_widen, out)


def _widen(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.dtype == torch.get_default_dtype() and value.dtype != torch.float64:
        return value.to(torch.float64)
    return value


def seed_forward() -> None:
    torch.manual_seed(FORWARD_SEED)


def saturate(expected: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """`expected` (float64) with the values beyond `dtype`'s range replaced by what a cast to `dtype` gives (an
    infinity of their sign, or the largest finite value for those that round down to it)."""
    if not expected.is_floating_point() or not dtype.is_floating_point or dtype == torch.float64:
        return expected
    beyond = expected.abs() > torch.finfo(dtype).max
    if not bool(beyond.any()):
        return expected
    return torch.where(beyond, expected.to(dtype).to(expected.dtype), expected)
