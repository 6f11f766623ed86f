"""Affine, asymmetric, per-group weight quantisation and its packed layout (the layout the Metal kernels read).

A weight W of shape (N, K) (out_features x in_features, as nn.Linear stores it) is cut along K into groups of
`group_size` consecutive values. Each group g of row n has a scale s[n, g] and a bias b[n, g], and each value is
stored as an unsigned integer q in [0, 2^bits - 1]:

    W[n, k] ~= s[n, k // group_size] * q[n, k] + b[n, k // group_size]

b is the group's minimum and s = (max - min) / (2^bits - 1), both rounded to the storage dtype first (b down, s so
that b + s * (2^bits - 1) still reaches the maximum) and q computed from the rounded values: every weight is within
half a step (s / 2) of its level, whatever the storage dtype.

Packing: 32 // bits values per 32-bit word, the first value of a word in its lowest bits. Row n, value k lives in
word k * bits // 32 of row n, at bit (k % (32 // bits)) * bits. The words are stored as int32 (the same bits as
uint32; PyTorch and MPS support int32 everywhere), shape (N, K * bits // 32). scales and biases: (N, K // group_size).
This is the layout of MLX's affine quantisation (`mx.quantize`), so weights quantised by MLX load as they are.
"""

from __future__ import annotations

import torch

BITS = (4, 8)
GROUP_SIZES = (32, 64, 128)


def check_format(bits: int, group_size: int, where: str = "mpskernels.quantize") -> None:
    if isinstance(bits, bool) or bits not in BITS:
        raise ValueError(f"{where}: bits must be one of {BITS}, got {bits!r}")
    if isinstance(group_size, bool) or group_size not in GROUP_SIZES:
        raise ValueError(f"{where}: group_size must be one of {GROUP_SIZES}, got {group_size!r}")


def values_per_word(bits: int) -> int:
    return 32 // bits


def quantize_weight(weight: torch.Tensor, bits: int, group_size: int,
                    dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(packed int32 (N, K * bits / 32), scales (N, K / group_size), biases (N, K / group_size)) of a 2-D weight.
    scales and biases are stored in `dtype` (default: the weight's own floating dtype)."""
    check_format(bits, group_size)
    if weight.dim() != 2:
        raise ValueError(f"mpskernels.quantize: the weight must be 2-D (out_features, in_features), got shape "
                         f"{tuple(weight.shape)}")
    n, k = weight.shape
    if k % group_size:
        raise ValueError(f"mpskernels.quantize: in_features {k} is not a multiple of group_size {group_size}")
    dtype = dtype or weight.dtype
    w = weight.detach().to(torch.float64).reshape(n, k // group_size, group_size)
    levels = 2**bits - 1
    lo, hi = w.amin(-1), w.amax(-1)
    biases, scales = _covering_range(lo, hi, levels, dtype)
    s64, b64 = scales.to(torch.float64)[..., None], biases.to(torch.float64)[..., None]
    # A constant group has scale 0: every value is its bias exactly (q = 0).
    q = torch.where(s64 > 0, torch.round((w - b64) / torch.where(s64 > 0, s64, 1.0)), 0.0)
    q = q.clamp(0, levels).to(torch.int64).reshape(n, k)
    return pack(q, bits), scales, biases


def _covering_range(lo: torch.Tensor, hi: torch.Tensor, levels: int,
                    dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(bias, scale) in `dtype` with bias <= lo and bias + scale * levels >= hi (in float64), so that every value
    of the group is within half a step of a level. Rounding the exact min and (max - min) / levels to the dtype
    alone can leave the ends out of range (bf16 keeps 8 bits: the top level could fall a whole step short)."""
    down, up = torch.tensor(-torch.inf, dtype=dtype), torch.tensor(torch.inf, dtype=dtype)
    bias = lo.to(dtype)
    bias = torch.where(bias.to(torch.float64) > lo, torch.nextafter(bias, down), bias)
    b64 = bias.to(torch.float64)
    scale = ((hi - b64) / levels).to(dtype)
    for _ in range(4):  # one step of the dtype up is enough after rounding to nearest; the loop is a guard
        short = scale.to(torch.float64) * levels + b64 < hi
        if not short.any():
            break
        scale = torch.where(short, torch.nextafter(scale, up), scale)
    return bias, scale


def pack(q: torch.Tensor, bits: int) -> torch.Tensor:
    """int32 words of unsigned `bits`-bit values q (N, K): value i of a word in bits [i * bits, (i + 1) * bits)."""
    per = values_per_word(bits)
    n, k = q.shape
    shifts = torch.arange(per, dtype=torch.int64, device=q.device) * bits
    words = (q.to(torch.int64).reshape(n, k // per, per) << shifts).sum(-1)
    words = torch.where(words >= 2**31, words - 2**32, words)  # the uint32 bits, as int32
    return words.to(torch.int32)


def unpack(packed: torch.Tensor, bits: int) -> torch.Tensor:
    """The unsigned values (int64, N x K) held in int32 words."""
    per = values_per_word(bits)
    shifts = torch.arange(per, dtype=torch.int64, device=packed.device) * bits
    words = packed.to(torch.int64) & 0xFFFFFFFF
    return ((words[..., None] >> shifts) & (2**bits - 1)).reshape(packed.shape[0], -1)


def dequantize(packed: torch.Tensor, scales: torch.Tensor, biases: torch.Tensor, bits: int, group_size: int,
               dtype: torch.dtype | None = None) -> torch.Tensor:
    """W (N, K) from its packed form, computed in `dtype` (default: the scales' dtype)."""
    dtype = dtype or scales.dtype
    q = unpack(packed, bits).to(dtype)
    n, k = q.shape
    s = scales.to(dtype).repeat_interleave(group_size, dim=-1)
    b = biases.to(dtype).repeat_interleave(group_size, dim=-1)
    return q * s + b


def packed_bytes(n: int, k: int, bits: int, group_size: int, scale_dtype: torch.dtype) -> int:
    """Bytes of the quantised form: packed words plus a scale and a bias per group."""
    element = torch.empty((), dtype=scale_dtype).element_size()
    return n * k * bits // 8 + 2 * n * (k // group_size) * element
