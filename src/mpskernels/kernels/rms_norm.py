"""RMSNorm over the last dimension: x * rsqrt(mean(x^2) + eps) [* weight]."""

from __future__ import annotations

import torch

from .spec import DTYPE_NAMES, FLOAT_DTYPES, KernelFamily, LaunchPlan, Scalar, TensorMeta, fits_uint32, like

N_READS = 4  # elements per thread per step; matches rms_norm<T, 4> in metal/rms_norm.metal
MAX_GROUP = 1024


def reference(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    x32 = x.float()
    y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    if weight is not None:
        y = y * weight.float()
    return y.to(x.dtype)


def group_size_for(cols: int) -> int:
    """Enough SIMD groups to cover a row in one step where possible (one thread per N_READS elements)."""
    threads = -(-cols // N_READS)
    return min(MAX_GROUP, max(32, -(-threads // 32) * 32))


def plan(x: TensorMeta, weight: TensorMeta | None, eps: float) -> LaunchPlan:
    cols = x.shape[-1]
    rows = x.numel() // cols
    group = group_size_for(cols)
    return LaunchPlan(
        kernel=f"rms_norm_{DTYPE_NAMES[x.dtype]}",
        buffers=("x", "weight" if weight is not None else None, "out", Scalar(eps, "float"), Scalar(cols, "uint")),
        threads=(rows * group, 1, 1),
        group_size=(group, 1, 1),
        constants={"has_weight": weight is not None},
    )


def validate(inputs) -> None:
    x, weight = inputs["x"], inputs["weight"]
    if weight is not None and (weight.dim() != 1 or x.dim() == 0 or weight.shape[0] != x.shape[-1]):
        raise ValueError(f"weight must have shape ({x.shape[-1] if x.dim() else '?'},) to match x's last "
                         f"dimension, got {tuple(weight.shape)}")


def needs_a_dimension(inputs) -> str | None:
    """x is 0-dimensional"""
    x = inputs["x"]
    return "x has no dimension to normalise" if x.dim() == 0 else None


def examples(dtype: torch.dtype):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 33, generator=gen).to(dtype)
    w = (torch.rand(33, generator=gen) + 0.5).to(dtype)
    return [(x, w, 1e-5), (x[:, :31], None, 1e-6), (torch.randn(2, 1, 70, generator=gen).to(dtype), None, 1e-5)]


def fallback_examples(dtype: torch.dtype):
    return [(torch.tensor(0.75).to(dtype), None, 1e-5)]


RMS_NORM = KernelFamily(
    name="rms_norm",
    source="rms_norm.metal",
    schema="(Tensor x, Tensor? weight, float eps) -> Tensor",
    reference=reference,
    dtypes=FLOAT_DTYPES,
    outputs={"out": like("x")},
    plan=plan,
    validate=validate,
    constraints=(needs_a_dimension, fits_uint32("x")),
    description="RMSNorm over the last dimension, optional weight",
    fusions="square, mean, rsqrt, scale and weight in one pass per row",
    examples=examples,
    fallback_examples=fallback_examples,
)
FAMILIES = (RMS_NORM,)
