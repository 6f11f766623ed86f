"""Normalisation of rows, (v - mean) * rsqrt(var + eps) with the biased variance, as the LayerNorm-style kernels
compute it (metal/rows.h, row_statistics): the references of layer_norm, add_layer_norm and group_norm.

Values are shifted by the row's first value before the mean is taken: the plain `sum / n` mean is a few ulps off
for a constant row, which leaves a variance of delta^2 instead of 0 and normalises the row to about +-1 when
eps << delta^2. Shifted, a constant row gives exactly 0 (NaN at eps = 0, as PyTorch does). Rows of finite fp32
values whose sums overflow (a spread beyond ~1e19), or whose variance underflows where eps does not dominate it,
are recomputed on values scaled by a power of two; a row holding inf or NaN gives NaN throughout.
"""

from __future__ import annotations

import torch


def _moments(g: torch.Tensor, scale: torch.Tensor | float, eps: float):
    """(d, mean, var) of d = g * scale - g[..., :1] * scale along the last dimension."""
    k = g[..., :1] * scale
    d = g * scale - k
    mean = d.mean(-1, keepdim=True)
    var = (d - mean).pow(2).mean(-1, keepdim=True)
    return d, mean, var


def _rescue_scale(g: torch.Tensor) -> torch.Tensor:
    """Per row, the power of two s that brings the largest |v - k| into [2^20, 2^21) (never above 1), as the kernels;
    NaN for rows holding inf or NaN."""
    half = (g * 0.5 - g[..., :1] * 0.5).abs().amax(-1, keepdim=True)
    exponent = (half.view(torch.int32) >> 23) & 0xFF
    scale = ((273 - exponent).clamp(1, 254) << 23).view(torch.float32)
    scale = torch.where(half > 0, scale, torch.ones_like(scale))  # a constant row keeps its variance of 0
    return torch.where(torch.isfinite(half), scale, torch.full_like(scale, float("nan")))


def normalize_rows(g: torch.Tensor, eps: float) -> torch.Tensor:
    """(g - mean) * rsqrt(var + eps) along the last dimension of g (float32 or float64; a 0-d g is one value)."""
    if g.dim() == 0:
        return normalize_rows(g.reshape(1), eps).reshape(())
    d, mean, var = _moments(g, 1.0, eps)
    y = (d - mean) * torch.rsqrt(var + eps)
    if g.dtype != torch.float32 or g.numel() == 0:
        return y
    # Overflowed sums, or a variance (with eps) so small it lies in fp32's subnormal range: as the kernels.
    overflowed = ~torch.isfinite(var) | (var + eps < 2.0**-100)
    if not torch.compiler.is_compiling() and not bool(overflowed.any()):
        return y  # eager: skip the rescue; a traced graph keeps it (no branch on data, so fullgraph compiles)
    scale = _rescue_scale(g)  # NaN for rows with inf or NaN: they stay NaN
    d, mean, var = _moments(g, scale, eps)
    rescued = (d - mean) * torch.rsqrt(var + eps * scale * scale)
    return torch.where(overflowed, rescued, y)
