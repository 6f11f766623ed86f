"""PyTorch's own MPS Metal kernels as anchors, launched with PyTorch's own host logic.

The kernels are read from the installed torch (`torch/include/ATen/native/mps/kernels/*.h`) through the
instantiation files `anchors/metal/torch_*.metal`. The host logic in front of each is the one of PyTorch's
`aten/src/ATen/native/mps/operations/Attention.mm`, written here in Python: which kernel variant (host name), how
many threadgroups of how many threads, which strides and parameters in which buffer slot.

Only the attention kernels ship as Metal source in the wheel. Of the other headers there, GroupNorm.h (and
Activation.h, Distance.h, Embedding*.h, GridSampler.h, Indexing.h, LinearAlgebra.h, Pooling.h, ReduceOps.h,
SamplingHelpers.h, Shape.h, TensorCompare.h, UpSample.h) hold only parameter structs and constants shared with the
host: their kernels live in `.metal` files of PyTorch's repository (GroupNorm.metal, LayerNorm.metal, RMSNorm.metal,
SoftMax*.metal, ...) that the wheel does not ship, so they cannot be anchors read from the installed torch.
SortMerge.h, SortRadix.h and SortTopK.h do ship kernels (sort and top-k); no family of ours competes with them.

Two things the wheel's headers fix that the host code we could read (a later revision of Attention.mm) does
differently, followed here as the installed kernels require: PrefillAttnParams holds 32-bit strides (the later host
packs 64-bit ones for a later header), and there is no Metal 4 tensor-op ("mpp") prefill variant.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import torch

from .launch import in_order, launcher, span, threadgroups, uint_vector
from .op import AnchorOp, Prepared, register

DTYPES = (torch.float32, torch.float16, torch.bfloat16)
SIMD_SIZE = 32

# scalarToMetalTypeString: how the decode kernels' host names spell a dtype.
METAL_TYPE = {torch.float32: "float", torch.float16: "half", torch.bfloat16: "bfloat", torch.bool: "bool"}
# How the prefill kernels' host names spell a dtype (a switch of its own in sdpa_prefill_mps).
PREFILL_TYPE = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}

VECTOR_HEAD_DIMS = (64, 96, 128, 256)  # sdpa_vector_supported_head_dim; DecodeAttention.h instantiates these
TWO_PASS_BLOCKS = 32  # `blocks` of sdpa_vector_2pass_mps (and the kernels' own constexpr)
TWO_PASS_MIN_KEYS = 1024
# prefill_block_shape_for_head_dim: head dim -> (BQ, BK, WM, WN); PrefillAttention.h instantiates exactly these.
PREFILL_BLOCKS = {256: (16, 8, 2, 1), 128: (32, 16, 4, 1), 96: (32, 32, 4, 1), 80: (32, 32, 4, 1),
                  72: (32, 32, 4, 1), 64: (32, 32, 4, 1), 32: (32, 32, 4, 1)}  # fmt: skip


# ---- what _scaled_dot_product_attention_math_mps does before it picks a kernel ----


def ensure_4d(t: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """A 3-D tensor gains a batch dimension, leading dimensions beyond 4-D are folded into the batch."""
    if t.dim() == 3:
        return t.unsqueeze(0), True
    if t.dim() > 4:
        return t.reshape(math.prod(t.shape[:-3]), *t.shape[-3:]), True
    return t, False


def calculate_scale(q: torch.Tensor, scale: float | None) -> float:
    """sdp::calculate_scale, as the float the kernels receive."""
    value = 1.0 / math.sqrt(q.size(-1)) if scale is None else scale
    return float(torch.tensor(value, dtype=torch.float32))


def expand_mask(mask: torch.Tensor | None, query: torch.Tensor, kv_len: int) -> torch.Tensor | None:
    """The mask broadcast to the query's shape with the key length last, then made 4-D (a view: no copy)."""
    if mask is None:
        return None
    return ensure_4d(mask.expand(*query.shape[:-1], kv_len))[0]


def kernel_strides(t: torch.Tensor) -> torch.Tensor:
    """The kernels read the head dimension linearly; anything else keeps its strides."""
    return t if t.stride(-1) == 1 else t.contiguous()


def sdpa_path(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attn_mask: torch.Tensor | None = None,
              is_causal: bool = False) -> str | None:
    """Which anchor op PyTorch's MPS SDPA runs for these inputs, or None where it falls back to MPSGraph.

    The vector (decode) kernels need a query length of at most 8 (and no longer than the keys), head dims 64, 96,
    128 or 256 for query and value alike, no mask or a boolean one or one of the query's dtype, and not a causal
    flag together with a mask. Their two-pass variant runs from 1024 keys on (the host also tests 4096 keys under
    grouped heads, a condition the first one already covers). The prefill kernel takes query lengths above 8."""
    q, k, v = ensure_4d(query)[0], ensure_4d(key)[0], ensure_4d(value)[0]
    mask = expand_mask(attn_mask, query, k.size(2))
    q_len, kv_len, dim = q.size(2), k.size(2), q.size(3)
    mask_ok = mask is None or mask.dtype in (torch.bool, q.dtype)
    vector_dims = dim == v.size(3) and dim in VECTOR_HEAD_DIMS
    fast = q_len <= 8 and q_len <= kv_len and mask_ok and vector_dims and not (is_causal and mask is not None)
    prefill = (not fast and q.dtype in PREFILL_TYPE and mask_ok and dim == v.size(3) and dim in PREFILL_BLOCKS
               and q_len > 8 and kv_len > 0)
    if prefill:
        return "torch.prefill_attention"
    if not fast:
        return None
    two_pass = kv_len >= TWO_PASS_MIN_KEYS or (k.size(1) < q.size(1) and kv_len >= 4096)
    return "torch.sdpa_vector_2pass" if two_pass else "torch.sdpa_vector"


# ---- the decode kernels: sdpa_vector_fast_mps and sdpa_vector_2pass_mps ----


class _Decode:
    """The inputs of a vector-kernel call as the host prepares them, and the buffer arguments they share."""

    def __init__(self, query, key, value, attn_mask, is_causal: bool, scale: float | None, kernel: str):
        q, self.unsqueezed = ensure_4d(query)
        k, v = ensure_4d(key)[0], ensure_4d(value)[0]
        self.query_shape = query.shape
        if not q.size(3) == k.size(3) == v.size(3):
            raise ValueError(f"{kernel} expects query, key, and value to have the same head dimension")
        if q.dtype not in DTYPES or k.dtype != q.dtype or v.dtype != q.dtype:
            raise TypeError(f"{kernel}: query, key and value must share one of {DTYPES}")
        if q.size(3) not in VECTOR_HEAD_DIMS:
            raise ValueError(f"{kernel} is instantiated for head dims {VECTOR_HEAD_DIMS}, not {q.size(3)}")
        if q.size(1) % k.size(1):
            raise ValueError(f"query heads ({q.size(1)}) must be a multiple of key heads ({k.size(1)})")
        self.mask = expand_mask(attn_mask, query, k.size(2))
        if self.mask is not None and self.mask.dtype not in (torch.bool, q.dtype):
            raise TypeError(f"{kernel} takes a boolean mask or one of the query's dtype, not {self.mask.dtype}")
        if self.mask is not None and is_causal:
            raise ValueError(f"{kernel} has no variant with both a mask and the causal flag")
        self.q, self.k, self.v = kernel_strides(q), kernel_strides(k), kernel_strides(v)
        self.is_causal = is_causal
        self.scale = calculate_scale(query, scale)

    def name(self, prefix: str) -> str:
        """`<prefix>_<type>_<qk dim>_<v dim>_mask<none|mask type>[_causal]`."""
        suffix = "none" if self.mask is None else METAL_TYPE[self.mask.dtype]
        causal = "_causal" if self.is_causal else ""
        return f"{prefix}_{METAL_TYPE[self.q.dtype]}_{self.q.size(3)}_{self.v.size(3)}_mask{suffix}{causal}"

    def buffers(self) -> list[torch.Tensor]:
        """q, k and v bound where they lie (the kernels index them with the strides passed beside them)."""
        return [span(self.q), span(self.k), span(self.v)]

    def common_args(self) -> list[Any]:
        """gqa_factor, N, the head strides and sequence strides of q, k, v, and the scale, in slot order."""
        q, k, v = self.q, self.k, self.v
        return [q.size(1) // k.size(1), k.size(2), uint_vector(q.stride(1), k.stride(1), v.stride(1)),
                uint_vector(q.stride(2), k.stride(2), v.stride(2)), self.scale]

    def mask_args(self) -> list[Any]:
        """The mask and its (kv seq, q seq, head, batch) strides, 0 where the mask broadcasts. Without a mask the
        host leaves both slots unbound (the kernel never reads them); the emulator binds every declared buffer,
        so an unread one-element placeholder of the instantiated mask type (float) and zero strides go there."""
        m = self.mask
        if m is None:
            return [torch.zeros(1, dtype=torch.float32, device=self.q.device), uint_vector(0, 0, 0, 0)]
        strides = [m.stride(d) if m.size(d) > 1 else 0 for d in (3, 2, 1, 0)]
        return [span(m), uint_vector(*strides)]

    def batch_args(self) -> bytes:
        """(q, k, v batch strides, number of query heads)."""
        return uint_vector(self.q.stride(0), self.k.stride(0), self.v.stride(0), self.q.size(1))

    def output(self, out: torch.Tensor) -> torch.Tensor:
        return out.view(self.query_shape) if self.unsqueezed else out


def _empty(shape, dtype, device) -> torch.Tensor:
    """Outputs start as NaN: an element the kernel fails to write cannot pass as a result."""
    return torch.full(shape, float("nan"), dtype=dtype, device=device)


def prepare_sdpa_vector(backend: str, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                        attn_mask: torch.Tensor | None = None, *, is_causal: bool = False,
                        scale: float | None = None) -> Prepared:
    """sdpa_vector_fast_mps: one threadgroup of 1024 threads (32 simdgroups) per (batch x head, query row)."""
    d = _Decode(query, key, value, attn_mask, is_causal, scale, "sdpa_vector")
    batch, heads, q_len, dim = d.q.shape
    out = _empty((batch, heads, q_len, dim), d.q.dtype, d.q.device)
    name = d.name("sdpa_vector")
    args = [*d.buffers(), out, *d.common_args(), *d.mask_args(), d.batch_args()]
    launch = launcher(backend, "torch_decode_attention", name, *args, **threadgroups((batch * heads, q_len, 1), (1024, 1, 1)))
    return Prepared(launch, d.output(out), (name,))


def prepare_sdpa_vector_2pass(backend: str, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                              attn_mask: torch.Tensor | None = None, *, is_causal: bool = False,
                              scale: float | None = None) -> Prepared:
    """sdpa_vector_2pass_mps: pass 1 splits the keys over 32 blocks, one threadgroup of 8 simdgroups per
    (batch x head, query row, block), each writing a partial output, sum and max; pass 2 combines them with one
    threadgroup of 1024 threads per (batch x head, query row)."""
    d = _Decode(query, key, value, attn_mask, is_causal, scale, "sdpa_vector_2pass")
    batch, heads, q_len, dim = d.q.shape
    device = d.q.device
    out = _empty((batch, heads, q_len, dim), d.q.dtype, device)
    partials = _empty((batch, heads, q_len, TWO_PASS_BLOCKS, dim), d.q.dtype, device)
    sums = _empty((batch, heads, q_len, TWO_PASS_BLOCKS), torch.float32, device)
    maxs = _empty((batch, heads, q_len, TWO_PASS_BLOCKS), torch.float32, device)
    first = d.name("sdpa_vector_2pass_1")
    second = f"sdpa_vector_2pass_2_{METAL_TYPE[d.q.dtype]}_{d.v.size(3)}"
    pass1 = launcher(backend, "torch_decode_attention", first, *d.buffers(), partials, sums, maxs, *d.common_args(), *d.mask_args(),
                     d.batch_args(), **threadgroups((batch * heads, q_len, TWO_PASS_BLOCKS), (8 * SIMD_SIZE, 1, 1)))
    pass2 = launcher(backend, "torch_decode_attention", second, partials, sums, maxs, out,
                     **threadgroups((batch * heads, q_len, 1), (1024, 1, 1)))
    return Prepared(in_order(pass1, pass2), d.output(out), (first, second))


# ---- the prefill kernel: sdpa_prefill_mps ----


def _int32s(values, what: str) -> list[int]:
    out = [int(v) for v in values]
    if any(not -(2**31) <= v < 2**31 for v in out):
        raise ValueError(f"{what} {out} do not fit the 32-bit ints of the installed PrefillAttnParams")
    return out


def prefill_params(q, k, v, out, scale: float) -> bytes:
    """PrefillAttnParams as the installed PrefillAttention.h declares it: B, H, D, qL, kL, gqa_factor (int),
    scale, softcapping (float; the host always passes 1, no softcapping), then the (batch, head, sequence) strides
    of Q, K, V and O (int[3] each)."""
    batch, heads, q_len, dim = q.shape
    sizes = _int32s((batch, heads, dim, q_len, k.size(2), heads // k.size(1)), "sizes")
    strides = _int32s([t.stride(i) for t in (q, k, v, out) for i in range(3)], "strides")
    return struct.pack("<6i2f12i", *sizes, scale, 1.0, *strides)


def prepare_prefill_attention(backend: str, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                              attn_mask: torch.Tensor | None = None, *, is_causal: bool = False,
                              scale: float | None = None) -> Prepared:
    """sdpa_prefill_mps: one threadgroup of (32, WM, WN) threads per (query block of BQ rows, head, batch), the
    block shape chosen by head dim. Causal masking is PyTorch's upper-left one (row r sees keys 0..r)."""
    q, unsqueezed = ensure_4d(query)
    k, v = ensure_4d(key)[0], ensure_4d(value)[0]
    if q.dtype not in PREFILL_TYPE or k.dtype != q.dtype or v.dtype != q.dtype:
        raise TypeError(f"prefill_attention: query, key and value must share one of {DTYPES}")
    dim = q.size(3)
    if dim != v.size(3) or dim not in PREFILL_BLOCKS:
        raise ValueError(f"prefill_attention is instantiated for equal q/v head dims in {sorted(PREFILL_BLOCKS)}")
    if q.size(1) % k.size(1):
        raise ValueError(f"query heads ({q.size(1)}) must be a multiple of key heads ({k.size(1)})")
    q, k, v = kernel_strides(q), kernel_strides(k), kernel_strides(v)
    batch, heads, q_len, _ = q.shape
    out = _empty(q.shape, q.dtype, q.device)
    mask = expand_mask(attn_mask, query, k.size(2))
    mask_type = PREFILL_TYPE[q.dtype]
    if mask is None:
        # The host binds 4-byte placeholders; the kernel never reads slots 5 and 6 without a mask. The emulator
        # checks a bound tensor's type, so the placeholder for `mask` has the instantiated mask type (q's).
        mask_args = [struct.pack("<4i", 0, 0, 0, 0), torch.zeros(1, dtype=q.dtype, device=q.device)]
    else:
        if mask.dtype == torch.bool:
            mask_type = "bool_"
        elif mask.dtype != q.dtype:
            raise TypeError("sdpa prefill: float mask dtype must match query dtype")
        mask = kernel_strides(mask)  # the kernel assumes a unit key stride
        mask_args = [struct.pack("<4i", *_int32s(mask.stride(), "mask strides")), span(mask)]
    bq, bk, wm, wn = PREFILL_BLOCKS[dim]
    name = (f"prefill_attention_{PREFILL_TYPE[q.dtype]}_bq{bq}_bk{bk}_bd{dim}_wm{wm}_wn{wn}"
            f"_hm{int(mask is not None)}_dc{int(is_causal)}_mask{mask_type}")
    params = prefill_params(q, k, v, out, calculate_scale(query, scale))
    grid = (-(-q_len // bq), heads, batch)
    args = [span(q), span(k), span(v), out, params, *mask_args]
    launch = launcher(backend, "torch_prefill_attention", name, *args, **threadgroups(grid, (32, wm, wn)))
    return Prepared(launch, out.view(query.shape) if unsqueezed else out, (name,))


SDPA_VECTOR = register(AnchorOp(
    name="torch.sdpa_vector", anchor="torch", family="attention", dtypes=DTYPES, prepare_fn=prepare_sdpa_vector,
    doc="Decode attention, one pass (PyTorch MPS, DecodeAttention.h), launched as Attention.mm's "
        "sdpa_vector_fast_mps launches it: query length <= 8, head dim 64/96/128/256, no mask, a boolean one or "
        "one of the query's dtype, or the causal flag (upper-left)."))
SDPA_VECTOR_2PASS = register(AnchorOp(
    name="torch.sdpa_vector_2pass", anchor="torch", family="attention", dtypes=DTYPES,
    prepare_fn=prepare_sdpa_vector_2pass,
    doc="Decode attention, two passes over 32 key blocks (PyTorch MPS, DecodeAttention.h), launched as "
        "Attention.mm's sdpa_vector_2pass_mps launches it; PyTorch runs it from 1024 keys on."))
PREFILL_ATTENTION = register(AnchorOp(
    name="torch.prefill_attention", anchor="torch", family="attention", dtypes=DTYPES,
    prepare_fn=prepare_prefill_attention,
    doc="Prefill (flash) attention (PyTorch MPS, PrefillAttention.h), launched as Attention.mm's "
        "sdpa_prefill_mps launches it: query lengths above 8, head dims 32/64/72/80/96/128/256, causal "
        "(upper-left) and/or a boolean mask or one of the query's dtype."))
