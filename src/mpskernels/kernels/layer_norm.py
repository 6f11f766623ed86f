"""LayerNorm over the last dimension, (x - mean) * rsqrt(var + eps) [* weight] [+ bias] with the biased variance,
alone or fused with the residual add before it (add_layer_norm returns (layer_norm(x + residual), x + residual))."""

from __future__ import annotations

import torch

from .rms_norm import (accumulation_dtype, check_eps, check_per_column, check_residual, grid, grid_fits_uint32,
                       row_launch, needs_a_dimension)
from .row_stats import normalize_rows
from .spec import DTYPE_NAMES, FLOAT_DTYPES, KernelFamily, LaunchPlan, Scalar, TensorMeta, fits_uint32, like


def reference(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None, eps: float) -> torch.Tensor:
    y = normalize_rows(x.to(accumulation_dtype(x.dtype)), eps)  # biased variance, as F.layer_norm
    if weight is not None:
        y = y * weight.to(y.dtype)
    if bias is not None:
        y = y + bias.to(y.dtype)
    return y.to(x.dtype)


def add_reference(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                  eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    h = x + residual  # in the op's dtype: the updated residual is rounded before it is normalised, as unfused code
    return reference(h, weight, bias, eps), h


def _buffer(t: TensorMeta | None, name: str) -> str | None:
    return name if t is not None else None


def plan(x: TensorMeta, weight: TensorMeta | None, bias: TensorMeta | None, eps: float) -> LaunchPlan:
    cols = x.shape[-1]
    threads, group = row_launch(cols, x.numel() // cols, x.dtype)
    return LaunchPlan(
        kernel=f"layer_norm_{DTYPE_NAMES[x.dtype]}",
        buffers=("x", _buffer(weight, "weight"), _buffer(bias, "bias"), "out", Scalar(eps, "float"),
                 Scalar(cols, "uint")),
        threads=threads,
        group_size=group,
        constants={"has_weight": weight is not None, "has_bias": bias is not None},
    )


def add_plan(x: TensorMeta, residual: TensorMeta, weight: TensorMeta | None, bias: TensorMeta | None,
             eps: float) -> LaunchPlan:
    cols = x.shape[-1]
    threads, group = row_launch(cols, x.numel() // cols, x.dtype)
    return LaunchPlan(
        kernel=f"add_layer_norm_{DTYPE_NAMES[x.dtype]}",
        buffers=("x", "residual", _buffer(weight, "weight"), _buffer(bias, "bias"), "out", "residual_out",
                 Scalar(eps, "float"), Scalar(cols, "uint")),
        threads=threads,
        group_size=group,
        constants={"has_weight": weight is not None, "has_bias": bias is not None},
    )


def validate(inputs) -> None:
    check_per_column(inputs["x"], "weight", inputs["weight"])
    check_per_column(inputs["x"], "bias", inputs["bias"])
    check_eps(inputs["eps"])


def add_validate(inputs) -> None:
    check_residual(inputs["x"], inputs["residual"])
    validate(inputs)


def affine(n: int, gen: torch.Generator, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.rand(n, generator=gen) + 0.5).to(dtype), torch.randn(n, generator=gen).to(dtype)


def examples(dtype: torch.dtype):
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(3, 33, generator=gen).to(dtype)
    w33, b33 = affine(33, gen, dtype)
    w70, _ = affine(70, gen, dtype)
    _, b32 = affine(32, gen, dtype)
    w1, b1 = affine(1, gen, dtype)
    w4103, b4103 = affine(4103, gen, dtype)
    return [
        (x, w33, b33, 1e-5),
        (x[:, :31], None, None, 1e-6),
        (torch.randn(2, 1, 70, generator=gen).to(dtype), w70, None, 1e-5),  # weight only
        (torch.randn(5, 32, generator=gen).to(dtype), None, b32, 1e-5),  # bias only
        (torch.randn(4, 1, generator=gen).to(dtype), w1, b1, 1e-5),  # one-element rows: out = bias
        (torch.randn(2, 97, generator=gen).to(dtype) * 3 + 2, None, None, 1e-5),  # a prime, mean far from 0
        # Two register steps at 1024 threads; then 27 elements past the register capacity (running moments).
        (torch.randn(1, 4103, generator=gen).to(dtype) + 4, w4103, b4103, 1e-5),
        (torch.randn(1, 16411, generator=gen).to(dtype) * 0.5 - 3, None, None, 1e-5),
    ]


def add_examples(dtype: torch.dtype):
    gen = torch.Generator().manual_seed(3)
    w33, b33 = affine(33, gen, dtype)
    _, b32 = affine(32, gen, dtype)
    w4103, b4103 = affine(4103, gen, dtype)
    return [
        (grid((3, 33), gen, dtype), grid((3, 33), gen, dtype), w33, b33, 1e-5),
        (grid((2, 1, 31), gen, dtype), grid((2, 1, 31), gen, dtype), None, None, 1e-6),
        (grid((4, 32), gen, dtype), grid((4, 32), gen, dtype), None, b32, 1e-5),
        (grid((3, 1), gen, dtype), grid((3, 1), gen, dtype), None, None, 1e-5),
        (grid((1, 4103), gen, dtype), grid((1, 4103), gen, dtype), w4103, b4103, 1e-5),
        (grid((1, 16411), gen, dtype), grid((1, 16411), gen, dtype), None, None, 1e-5),
    ]


def fallback_examples(dtype: torch.dtype):
    return [(torch.tensor(0.75).to(dtype), None, None, 1e-5)]


def add_fallback_examples(dtype: torch.dtype):
    return [(torch.tensor(0.75).to(dtype), torch.tensor(-0.25).to(dtype), None, None, 1e-5)]


LAYER_NORM = KernelFamily(
    name="layer_norm",
    source="layer_norm.metal",
    schema="(Tensor x, Tensor? weight, Tensor? bias, float eps) -> Tensor",
    reference=reference,
    dtypes=FLOAT_DTYPES,
    outputs={"out": like("x")},
    plan=plan,
    validate=validate,
    validate_is_static=True,
    constraints=(needs_a_dimension, fits_uint32("x"), grid_fits_uint32),
    description="LayerNorm over the last dimension, optional weight and bias",
    fusions="mean and variance of the row shifted by its first value (two passes over registers), normalise, weight and bias in one pass per row; "
            "x read once for rows up to 64 KiB",
    examples=examples,
    fallback_examples=fallback_examples,
)

ADD_LAYER_NORM = KernelFamily(
    name="add_layer_norm",
    source="layer_norm.metal",
    schema="(Tensor x, Tensor residual, Tensor? weight, Tensor? bias, float eps) -> (Tensor, Tensor)",
    reference=add_reference,
    dtypes=FLOAT_DTYPES,
    outputs={"out": like("x"), "residual_out": like("x")},
    plan=add_plan,
    validate=add_validate,
    validate_is_static=True,
    constraints=(needs_a_dimension, fits_uint32("x"), grid_fits_uint32),
    description="Residual add fused into the LayerNorm after it: (layer_norm(x + residual), x + residual)",
    fusions="residual add (rounded to the dtype, as unfused) and LayerNorm in one pass per row",
    examples=add_examples,
    fallback_examples=add_fallback_examples,
)
FAMILIES = (LAYER_NORM, ADD_LAYER_NORM)
