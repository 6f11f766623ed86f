"""Seeded random calls of every op: small shapes, every dtype, strided / offset / stride-0 views, values from normal
to near the dtype's max, tiny, constant rows, NaN and +-inf, every optional argument. `make_case(op, index)` is a
pure function of its arguments, so a failing case is replayed by its (op, index) alone."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Callable

import torch

DTYPES = (torch.float32, torch.float16, torch.bfloat16)
BIG = {torch.float32: 3.0e38, torch.float16: 6.0e4, torch.bfloat16: 3.0e38}  # near each dtype's max
TINY = {torch.float32: 1e-30, torch.float16: 1e-3, torch.bfloat16: 1e-30}  # normal, far below 1
# Value kinds; `special` sprinkles NaN and +-inf; `huge` spans +-BIG (a spread no fp32 sum of squares holds).
KINDS = ("normal", "normal", "uniform", "offset", "tiny", "huge", "constant", "special")


@dataclass
class Case:
    op: str
    index: int
    args: tuple
    note: str  # how the inputs were drawn, for the reproducer line


class Draw:
    """Random choices of one case: Python's random for structure, a torch generator for values."""

    def __init__(self, op: str, index: int):
        seed = (hash_name(op) * 1_000_003 + index) % 2**63
        self.rng = random.Random(seed)
        self.gen = torch.Generator().manual_seed(seed)
        self.notes: list[str] = []

    def choice(self, options):
        return options[self.rng.randrange(len(options))]

    def values(self, shape, dtype, kind: str, finite_only: bool = False) -> torch.Tensor:
        n = math.prod(shape)
        if kind == "special" and finite_only:
            kind = "normal"
        if kind == "uniform":
            t = torch.rand(shape, generator=self.gen) * 4 - 2
        elif kind == "offset":
            t = torch.randn(shape, generator=self.gen) + self.choice((1e3, -50.0, 7.5))
        elif kind == "tiny":
            t = torch.randn(shape, generator=self.gen) * TINY[dtype]
        elif kind == "huge":
            t = (torch.rand(shape, generator=self.gen) * 2 - 1) * BIG[dtype]
        elif kind == "constant":
            t = torch.full(shape, self.choice((27.07, -3.3, 0.0, 1e-3)))
        else:
            t = torch.randn(shape, generator=self.gen)
        if kind == "special" and n:
            flat = t.reshape(-1)
            for _ in range(1 + n // 16):
                flat[self.rng.randrange(n)] = self.choice((math.nan, math.inf, -math.inf))
        return t.to(dtype)

    def view(self, t: torch.Tensor, allow_stride0: bool = True) -> torch.Tensor:
        """The same values as given, or a non-contiguous / offset view of them, or (rows all equal) stride 0."""
        how = self.choice(("contiguous", "contiguous", "strided", "offset") + (("stride0",) if allow_stride0 else ()))
        if how == "strided" and t.dim():
            storage = torch.full((t.numel() * 2 + 3,), math.nan, dtype=t.dtype)
            v = storage[3:].view(*t.shape, 2)[..., 0]
            v.copy_(t)
            return v
        if how == "offset" and t.numel():
            storage = torch.full((t.numel() + 5,), math.nan, dtype=t.dtype)
            v = storage[5:].view(t.shape)
            v.copy_(t)
            return v
        if how == "stride0" and t.dim() >= 2 and t.shape[0] > 1:
            return t[:1].expand(t.shape)  # every leading slice is the first one (stride 0)
        return t


def hash_name(name: str) -> int:
    return sum((i + 1) * ord(c) for i, c in enumerate(name))  # stable across processes (str hash is salted)


# ---- per-op argument makers ----


def _rows_shape(d: Draw) -> tuple[int, ...]:
    cols = d.choice((1, 2, 3, 7, 8, 16, 31, 32, 33, 40, 65, 130))
    lead = d.choice(((1,), (3,), (2, 3), (4,)))
    return lead + (cols,)


def _elementwise(d: Draw, dtype, kind, approx: bool):
    x = d.view(d.values(_rows_shape(d), dtype, kind))
    return (x, d.choice(("none", "tanh"))) if approx else (x,)


def _gated(d: Draw, dtype, kind, approx: bool):
    shape = _rows_shape(d)
    a, b = d.view(d.values(shape, dtype, kind)), d.view(d.values(shape, dtype, d.choice(KINDS)))
    return (a, b, d.choice(("none", "tanh"))) if approx else (a, b)


def _split(d: Draw, dtype, kind, approx: bool):
    shape = _rows_shape(d)
    x = d.view(d.values(shape[:-1] + (2 * shape[-1],), dtype, kind))
    return (x, d.choice(("none", "tanh"))) if approx else (x,)


def _bias_act(d: Draw, dtype, kind):
    act = d.choice(("none", "relu", "relu6", "sigmoid", "tanh", "silu", "gelu", "gelu_tanh", "mish", "hardswish"))
    if d.rng.random() < 0.5:
        shape, dim = _rows_shape(d), -1
        channels = shape[-1]
    else:
        channels = d.choice((1, 3, 8, 17))
        shape, dim = (2, channels, d.choice((1, 5, 9))), 1
    x = d.view(d.values(shape, dtype, kind))
    bias = d.values((channels,), dtype, d.choice(("normal", "uniform", "tiny")))
    return (x, bias, act, dim)


def _softmax(d: Draw, dtype, kind):
    shape = _rows_shape(d)
    x = d.view(d.values(shape, dtype, kind))
    mask = None
    r = d.rng.random()
    if r < 0.4:
        mshape = d.choice(((shape[-1],), (1,) * (len(shape) - 1) + (shape[-1],), shape))
        mask = d.values(mshape, dtype, "normal")
        if d.rng.random() < 0.5 and mask.numel():
            mask.reshape(-1)[d.rng.randrange(mask.numel())] = -math.inf
    scale = d.choice((1.0, 0.125, 2.0, 1.0 / 3.0))
    if d.rng.random() < 0.3:  # soft-capped logits (Gemma-2's attention scores)
        return (x, mask, scale, d.choice((50.0, 5.0, 0.5)))
    return (x, mask, scale)


def _affine(d: Draw, n: int, dtype, optional: bool = True):
    w = (torch.rand(n, generator=d.gen) + 0.5).to(dtype) if not optional or d.rng.random() < 0.6 else None
    b = torch.randn(n, generator=d.gen).to(dtype) if not optional or d.rng.random() < 0.6 else None
    return w, b


EPS = (1e-5, 1e-6, 1e-12, 0.0)


def _layer_norm(d: Draw, dtype, kind):
    shape = _rows_shape(d)
    w, b = _affine(d, shape[-1], dtype)
    return (d.view(d.values(shape, dtype, kind)), w, b, d.choice(EPS))


def _add_layer_norm(d: Draw, dtype, kind):
    shape = _rows_shape(d)
    w, b = _affine(d, shape[-1], dtype)
    x = d.view(d.values(shape, dtype, kind))
    residual = d.view(d.values(shape, dtype, "constant" if kind == "constant" else d.choice(("normal", "tiny"))))
    if kind == "constant":
        residual = torch.zeros_like(residual)
    return (x, residual, w, b, d.choice(EPS))


def _weight_offset(d: Draw, w) -> tuple:
    """Gemma's RMSNorm (x_hat * (1 + w)) for some weighted draws."""
    return (1.0,) if w is not None and d.rng.random() < 0.3 else ()


def _rms_norm(d: Draw, dtype, kind):
    shape = _rows_shape(d)
    w, _ = _affine(d, shape[-1], dtype)
    return (d.view(d.values(shape, dtype, kind)), w, d.choice(EPS[:2])) + _weight_offset(d, w)


def _add_rms_norm(d: Draw, dtype, kind):
    shape = _rows_shape(d)
    w, _ = _affine(d, shape[-1], dtype)
    return (d.view(d.values(shape, dtype, kind)), d.view(d.values(shape, dtype, "normal")), w,
            d.choice(EPS[:2])) + _weight_offset(d, w)


def _group_norm(d: Draw, dtype, kind):
    groups = d.choice((1, 2, 4))
    channels = groups * d.choice((1, 2, 3))
    shape = (d.choice((1, 2)), channels) + d.choice(((), (5,), (3, 4), (1, 7)))
    w, b = _affine(d, channels, dtype)
    return (d.view(d.values(shape, dtype, kind)), groups, w, b, d.choice(EPS))


def _attention(d: Draw, dtype, kind):
    # Keys and values stay finite: a non-finite v at a key a query cannot see is outside the contract
    # (docs/kernels.md); q may hold anything.
    head_dim = d.choice((64, 64, 80, 16))  # 16: no kernel, the reference runs
    q_heads, kv_heads = d.choice(((2, 1), (2, 2), (4, 2)))
    q_len = d.choice((1, 2, 5, 9, 12))
    cap = d.choice((q_len, q_len + 3, 33, 40))
    kv_len = d.choice((None, cap, max(q_len, cap - 2)))
    n = cap if kv_len is None else kv_len
    causal = d.rng.random() < 0.4
    qkind = kind if kind not in ("special",) else "normal"
    q = d.values((1, q_heads, q_len, head_dim), dtype, qkind) * (0.25 if qkind in ("normal", "uniform") else 1)
    k = d.values((1, kv_heads, cap, head_dim), dtype, d.choice(("normal", "uniform", "tiny")), True)
    v = d.values((1, kv_heads, cap, head_dim), dtype, d.choice(("normal", "uniform", "huge", "constant")), True)
    mask = None
    r = d.rng.random()
    if r < 0.25:
        mask = torch.rand((1, 1, q_len, n), generator=d.gen) < 0.8
        mask[..., 0] = True
    elif r < 0.5:
        mask = d.values((1, q_heads, q_len, n), dtype, "normal")
    scale = d.choice((None, None, 0.05, 1.0))
    return (d.view(q, False), d.view(k, False), d.view(v, False), mask, causal, scale, kv_len)


def _rope(d: Draw, dtype, kind):
    batch, seq, head_dim = d.choice((1, 2)), d.choice((1, 3, 7)), d.choice((8, 16, 34))
    rotary = d.choice((head_dim, head_dim // 2 // 2 * 2 or 2))
    positions = seq + d.choice((0, 4))
    angles = torch.rand(positions, rotary // 2, generator=d.gen) * 6
    cos_half, sin_half = angles.cos(), angles.sin()
    interleaved = d.rng.random() < 0.5
    if interleaved:
        cos, sin = cos_half.repeat_interleave(2, -1), sin_half.repeat_interleave(2, -1)
    else:
        cos, sin = torch.cat((cos_half, cos_half), -1), torch.cat((sin_half, sin_half), -1)
    table_dtype = d.choice((dtype, torch.float32))
    cos, sin = cos.to(table_dtype), sin.to(table_dtype)
    q = d.view(d.values((batch, 2, seq, head_dim), dtype, kind))
    k = d.view(d.values((batch, 1, seq, head_dim), dtype, d.choice(KINDS)))
    position_ids, offset = None, d.choice((0, positions - seq))
    if d.rng.random() < 0.4:
        position_ids = torch.randint(0, positions, (batch, seq), generator=d.gen).to(d.choice((torch.int32,
                                                                                               torch.int64)))
        offset = 0
    return (q, k, cos, sin, position_ids, offset, interleaved)


def _kv_cache_append(d: Draw, dtype, kind):
    b, h, cap, dk, dv = d.choice((1, 2)), d.choice((1, 3)), d.choice((4, 9, 17)), d.choice((4, 31, 64)), \
        d.choice((4, 31, 64))
    new = d.choice((1, 2, cap))
    offset = d.rng.randrange(cap - new + 1)
    kc, vc = d.values((b, h, cap, dk), dtype, "normal"), d.values((b, h, cap, dv), dtype, "normal")
    k, v = d.view(d.values((b, h, new, dk), dtype, kind)), d.view(d.values((b, h, new, dv), dtype, kind))
    if d.rng.random() < 0.3:  # a strided cache: the op writes through a contiguous copy and copies back
        kc = d.view(kc, False)
    return (kc, vc, k, v, offset)


def _rope_kv_append(d: Draw, dtype, kind):
    q, k, cos, sin, position_ids, offset, interleaved = _rope(d, dtype, kind)
    batch, k_heads, seq, head_dim = k.shape
    v_dim, cap = d.choice((head_dim, 5, 64)), seq + d.choice((0, 1, 6))
    cache_offset = d.rng.randrange(cap - seq + 1)
    kc, vc = d.values((batch, k_heads, cap, head_dim), dtype, "normal"), d.values((batch, k_heads, cap, v_dim), dtype,
                                                                                 "normal")
    if d.rng.random() < 0.3:  # a strided cache: the op writes through a contiguous copy and copies back
        kc = d.view(kc, False)
    q_out, k_out = (d.view(torch.full(t.shape, math.nan, dtype=dtype), False) for t in (q, k))
    v = d.view(d.values((batch, k_heads, seq, v_dim), dtype, d.choice(KINDS)))
    return (q_out, k_out, kc, vc, q, k, v, cos, sin, position_ids, offset, interleaved, cache_offset)


def _quantized_linear(d: Draw, dtype, kind):
    from mpskernels.quantize.packing import quantize_weight

    bits, group_size = d.choice((4, 8)), d.choice((32, 64, 128))
    k = group_size * d.choice((1, 2, 3))
    n = d.choice((1, 7, 8, 13, 33))
    rows = d.choice(((1,), (3,), (2, 4), (9,), (37,)))
    weight = d.values((n, k), torch.float32, d.choice(("normal", "uniform", "constant")))
    w_q, scales, biases = quantize_weight(weight, bits, group_size, dtype)
    x = d.view(d.values((*rows, k), dtype, kind))
    bias = d.values((n,), dtype, "normal") if d.rng.random() < 0.5 else None
    return (x, w_q, d.view(scales, False), biases, bias, bits, group_size)


MAKERS: dict[str, Callable[[Draw, torch.dtype, str], tuple]] = {
    "silu": lambda d, t, k: _elementwise(d, t, k, False),
    "gelu": lambda d, t, k: _elementwise(d, t, k, True),
    "mish": lambda d, t, k: _elementwise(d, t, k, False),
    "hardswish": lambda d, t, k: _elementwise(d, t, k, False),
    "swiglu": lambda d, t, k: _gated(d, t, k, False),
    "geglu": lambda d, t, k: _gated(d, t, k, True),
    "swiglu_split": lambda d, t, k: _split(d, t, k, False),
    "geglu_split": lambda d, t, k: _split(d, t, k, True),
    "bias_act": _bias_act,
    "softmax": _softmax,
    "log_softmax": _softmax,
    "layer_norm": _layer_norm,
    "add_layer_norm": _add_layer_norm,
    "rms_norm": _rms_norm,
    "add_rms_norm": _add_rms_norm,
    "group_norm": _group_norm,
    "attention": _attention,
    "rope": _rope,
    "kv_cache_append": _kv_cache_append,
    "rope_kv_append": _rope_kv_append,
    "quantized_linear": _quantized_linear,
}
# rms_norm's contract stops short of fp32-overflowing sums of squares (values beyond ~1e19: docs/kernels.md).
KINDS_BY_OP: dict[str, tuple[str, ...]] = {
    "quantized_linear": ("normal", "uniform", "offset", "tiny", "constant"),  # finite: a matmul spreads NaN
    "rms_norm": tuple(k for k in KINDS if k != "huge"),
    "add_rms_norm": tuple(k for k in KINDS if k != "huge"),
}


def make_case(op: str, index: int) -> Case:
    d = Draw(op, index)
    dtype = d.choice(DTYPES)
    kind = d.choice(KINDS_BY_OP.get(op, KINDS))
    args = MAKERS[op](d, dtype, kind)
    return Case(op, index, args, f"dtype={str(dtype)[6:]} kind={kind}")


def describe(args: tuple) -> str:
    def one(a: Any) -> str:
        if isinstance(a, torch.Tensor):
            layout = "" if a.is_contiguous() else f" strides={a.stride()}"
            return f"T{tuple(a.shape)}:{str(a.dtype)[6:]}{layout}"
        return repr(a)
    return ", ".join(one(a) for a in args)
