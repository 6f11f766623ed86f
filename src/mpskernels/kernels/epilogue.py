"""Bias + activation epilogue of a Linear or convolution: act(x + bias), bias broadcast along one dimension of x.

`dim=-1` (the default) is a Linear's output, bias along the last dimension; `dim=1` a convolution's NCHW (or NCL,
NCDHW) output, bias per channel.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F

from .activations import compute, gelu, hardswish, row_grid
from .spec import DTYPE_NAMES, FLOAT_DTYPES, KernelFamily, LaunchPlan, Scalar, TensorMeta, fits_uint32, like

# act -> the PyTorch function it stands for (the reference); the names are the kernels' host-name infixes.
ACTIVATIONS = {
    "none": lambda y: y,
    "relu": F.relu,
    "relu6": F.relu6,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "silu": F.silu,
    "gelu": gelu,
    "gelu_tanh": lambda y: gelu(y, "tanh"),
    "mish": F.mish,
    "hardswish": hardswish,
}


def bias_shape(x_dim: int, dim: int) -> tuple[int, ...]:
    """How bias[C] is viewed to broadcast along dimension `dim` of an x with x_dim dimensions."""
    d = dim % x_dim
    return (-1,) + (1,) * (x_dim - d - 1)


def reference(x: torch.Tensor, bias: torch.Tensor, act: str = "none", dim: int = -1) -> torch.Tensor:
    y = compute(x) + compute(bias).view(bias_shape(x.dim(), dim))
    return ACTIVATIONS[act](y).to(x.dtype)


def plan(x: TensorMeta, bias: TensorMeta, act: str = "none", dim: int = -1) -> LaunchPlan:
    d = dim % len(x.shape)
    channels = x.shape[d]
    inner = 1
    for s in x.shape[d + 1 :]:
        inner *= s
    dtype = DTYPE_NAMES[x.dtype]
    if inner == 1:  # bias along the last (non-trivial) dimension: rows of `channels` elements
        threads, group = row_grid(channels, x.numel() // max(1, channels), x.dtype)
        return LaunchPlan(
            kernel=f"bias_act_{act}_{dtype}",
            buffers=("x", "bias", "out", Scalar(channels, "uint")),
            threads=threads,
            group_size=group,
        )
    threads, group = row_grid(inner, x.numel() // max(1, inner), x.dtype)
    return LaunchPlan(
        kernel=f"bias_act_channels_{act}_{dtype}",
        buffers=("x", "bias", "out", Scalar(inner, "uint"), Scalar(channels, "uint")),
        threads=threads,
        group_size=group,
    )


def validate(inputs: Mapping[str, Any]) -> None:
    x, bias = inputs["x"], inputs["bias"]
    act, dim = inputs.get("act", "none"), inputs.get("dim", -1)
    if act not in ACTIVATIONS:
        raise ValueError(f"act must be one of {', '.join(repr(a) for a in ACTIVATIONS)}, got {act!r}")
    if x.dim() == 0:
        raise ValueError("x must have at least one dimension for the bias to broadcast along")
    if not -x.dim() <= dim < x.dim():
        raise ValueError(f"dim {dim} is out of range for x with {x.dim()} dimensions")
    if bias.dim() != 1 or bias.shape[0] != x.shape[dim]:
        raise ValueError(f"bias must have shape ({x.shape[dim]},) to match x's dimension {dim}, "
                         f"got {tuple(bias.shape)}")


def examples(dtype: torch.dtype):
    gen = torch.Generator().manual_seed(0)

    def rand(*shape, scale=2.0):
        return torch.randn(*shape, generator=gen).mul(scale).to(dtype)

    return [
        # Linear outputs: bias along the last dimension.
        (rand(5, 33), rand(33, scale=1.0), "gelu", -1),
        (rand(3, 31), rand(31, scale=1.0), "silu", -1),
        (rand(2, 1, 32), rand(32, scale=1.0), "relu", 2),
        (rand(37), rand(37, scale=1.0), "gelu_tanh", -1),
        (rand(4, 1), rand(1, scale=1.0), "none", -1),
        (rand(2, 130), rand(130, scale=1.0), "tanh", -1),
        # Convolution outputs: bias along the channels (dim 1) of NCHW / NCL, and an inner dimension of size 1.
        (rand(2, 3, 5, 7), rand(3, scale=1.0), "hardswish", 1),
        (rand(1, 33, 3, 1), rand(33, scale=1.0), "relu6", 1),
        (rand(2, 4, 37), rand(4, scale=1.0), "mish", 1),
        (rand(3, 2, 1, 1), rand(2, scale=1.0), "sigmoid", -3),
        (rand(1, 5, 2, 9), rand(5, scale=1.0), "gelu", 1),
    ]


BIAS_ACT = KernelFamily(
    name="bias_act",
    source="epilogue.metal",
    schema='(Tensor x, Tensor bias, str act="none", int dim=-1) -> Tensor',
    reference=reference,
    dtypes=FLOAT_DTYPES,
    outputs={"out": like("x")},
    plan=plan,
    validate=validate,
    validate_is_static=True,
    constraints=(fits_uint32("x"),),
    description="act(x + bias), bias along dim (-1: Linear, 1: conv NCHW); act: "
    + ", ".join(ACTIVATIONS),
    fusions="bias add and activation in one pass over a Linear or convolution output",
    examples=examples,
)
FAMILIES = (BIAS_ACT,)
