"""MLX's attention kernels: decode (sdpa_vector.h, one pass and two passes) and prefill (steel attention).

Host logic after mlx/backend/metal/scaled_dot_product_attention.cpp: ScaledDotProductAttention::eval_gpu (the
route: query length <= 8 is "vector" mode, two passes when the device is large ('s'/'d') and the keys >= 1024, or
under GQA from 4096 keys), sdpa_vector, sdpa_vector_2pass (block count by device class, the GQA first pass for
8 query heads per KV head from 8192 keys) and sdpa_full_self_attention_metal (the tile for GPUs without NAX, the
AttnParams struct, an output laid out (B, L, H, D)). Queries, keys, values: (B, H, L, D); keys and values may be
slices of a longer cache (the last stride 1, the head dims contiguous), as MLX accepts them without a copy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..op import AnchorOp, Prepared, register
from .launch import FLOATS, TYPE_NAME, TYPE_STRING, check_dtype, in_order, launcher, packed, span, threadgroups

# The GPU whose choices the host logic makes (Metal's device architecture name: generation, then the size
# class: 'g' base, 'p' Pro, 's' Max, 'd' Ultra). The default is an M4 Max, the largest single-die part.
DEFAULT_ARCH = "applegpu_g16s"
VECTOR_HEAD_DIMS = (64, 128)  # instantiated in anchors/metal/mlx_sdpa_vector.metal
STEEL_HEAD_DIMS = (64, 80, 128)  # instantiated in anchors/metal/mlx_steel_attention.metal, as MLX's own file does


@dataclass(frozen=True)
class Attention:
    """The shapes, strides and flags every MLX attention host function derives from its inputs."""

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    scale: float
    mask: torch.Tensor | None
    causal: bool

    @property
    def batch(self) -> int:
        return self.q.shape[0]

    @property
    def heads(self) -> int:
        return self.q.shape[1]

    @property
    def kv_heads(self) -> int:
        return self.k.shape[1]

    @property
    def gqa_factor(self) -> int:
        return self.heads // self.kv_heads

    @property
    def q_len(self) -> int:
        return self.q.shape[2]

    @property
    def kv_len(self) -> int:
        return self.k.shape[2]

    @property
    def head_dim(self) -> int:
        return self.q.shape[3]

    @property
    def v_dim(self) -> int:
        return self.v.shape[3]


def attention_inputs(op: str, q, k, v, scale, mask, causal) -> Attention:
    check_dtype(op, q, k, v)
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(f"{op}: queries, keys and values are (B, H, L, D)")
    if q.shape[1] % k.shape[1] or k.shape[:3] != v.shape[:3] or q.shape[0] != k.shape[0]:
        raise ValueError(f"{op}: shapes q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)} do not fit")
    if not q.is_contiguous():
        raise ValueError(f"{op}: queries must be contiguous (MLX's host would copy them first)")
    for name, t in (("keys", k), ("values", v)):
        if t.stride(3) != 1 or not (t.shape[0] == 1 or t.shape[1] == 1 or t.stride(0) == t.stride(1) * t.shape[1]):
            raise ValueError(f"{op}: {name} need their last stride 1 and batch and head contiguous "
                             f"(MLX's host would copy them first)")
    if mask is not None:
        if mask.dtype != torch.bool and mask.dtype != q.dtype:
            raise TypeError(f"{op}: the mask is boolean or of the queries' dtype, got {mask.dtype}")
        while mask.dim() < 4:
            mask = mask.unsqueeze(0)
        mask = mask.expand(q.shape[0], q.shape[1], q.shape[2], k.shape[2])
    return Attention(q, k, v, 1.0 / math.sqrt(q.shape[3]) if scale is None else float(scale), mask, bool(causal))


# ---- decode: sdpa_vector (one pass) and sdpa_vector_2pass ----


def kv_strides(t: torch.Tensor) -> tuple[int, int]:
    """(head stride, sequence stride) as sdpa_vector reads them: a single head steps by the batch stride."""
    return (t.stride(0) if t.shape[1] == 1 else t.stride(1)), t.stride(2)


def mask_arguments(a: Attention) -> tuple[bool, bool, list]:
    """(bool mask?, float mask?, the mask buffer and its (kv, q, head) strides) as sdpa_vector binds them."""
    if a.mask is None:
        return False, False, []
    m = a.mask
    if not (m.is_contiguous() or a.batch == 1 or a.heads == 1 or m.stride(0) == m.stride(1) * m.shape[1]):
        raise ValueError("mask layout: MLX's host would copy this mask first")
    kv_stride = m.stride(3) if m.shape[3] > 1 else 0
    q_stride = m.stride(2) if m.shape[2] > 1 else 0
    head_stride = m.stride(1) if m.shape[1] > 1 else (m.stride(0) if m.shape[0] > 1 else 0)
    is_bool = m.dtype == torch.bool
    return is_bool, not is_bool, [span(m), kv_stride, q_stride, head_stride]


def vector_constants(a: Attention, is_bool: bool, is_float: bool) -> dict:
    return {"has_mask": a.mask is not None, "query_transposed": False, "do_causal": a.causal and a.q_len > 1,
            "bool_mask": is_bool, "float_mask": is_float, "has_sinks": False}


def check_vector(op: str, a: Attention) -> None:
    if a.q_len > 8:
        raise ValueError(f"{op}: MLX's vector kernels run query lengths up to 8, got {a.q_len}")
    if a.head_dim != a.v_dim or a.head_dim not in VECTOR_HEAD_DIMS:
        raise ValueError(f"{op}: head dims {VECTOR_HEAD_DIMS} are instantiated, got {a.head_dim}/{a.v_dim}")
    if a.q_len * a.gqa_factor > 32:
        raise ValueError(f"{op}: MLX's vector kernels need query length x GQA factor <= 32")


def prepare_sdpa_vector(backend: str, q, k, v, *, scale=None, mask=None, causal=False, arch=DEFAULT_ARCH) -> Prepared:
    a = attention_inputs("mlx.sdpa_vector", q, k, v, scale, mask, causal)
    check_vector("mlx.sdpa_vector", a)
    name = f"sdpa_vector_{TYPE_STRING[q.dtype]}_{a.head_dim}_{a.v_dim}"
    out = torch.empty(a.batch, a.heads, a.q_len, a.v_dim, dtype=q.dtype, device=q.device)
    is_bool, is_float, mask_args = mask_arguments(a)
    args = [q, span(k), span(v), out, a.gqa_factor, a.kv_len, *kv_strides(k), *kv_strides(v), a.scale]
    if mask_args:
        args += [mask_args[0], None] if is_bool else [None, mask_args[0]]
        args += mask_args[1:]
    groups, group = (a.batch * a.heads, a.q_len, 1), (1024, 1, 1)
    launch = launcher(backend, "mlx_sdpa_vector", name, *args, **threadgroups(groups, group),
                      constants=vector_constants(a, is_bool, is_float))
    return Prepared(launch, out, (name,))


def two_pass_blocks(arch: str, kv_len: int, n_simds: int) -> int:
    """sdpa_vector_2pass's block count (the split of the keys) by device size class."""
    size = arch[-1]
    if size == "s":
        if kv_len > 1024 and n_simds > 4:
            for limit, blocks in ((8192, 128), (32768, 256), (65536, 512)):
                if kv_len <= limit:
                    return blocks
            return 1024
        return 64
    if size == "d":
        if n_simds <= 2 and kv_len > 8192:
            return 256
        if n_simds >= 6 and kv_len >= 65536:
            return 1024
        if n_simds >= 6 and kv_len >= 16384:
            return 512
        return 128
    return 64 if n_simds >= 4 else 32


def uses_gqa_first_pass(a: Attention) -> bool:
    return (a.mask is None and a.q_len == 1 and a.heads == 8 * a.kv_heads and a.head_dim == a.v_dim
            and a.head_dim in (64, 128) and a.kv_len >= 8192)


def prepare_sdpa_vector_2pass(backend: str, q, k, v, *, scale=None, mask=None, causal=False,
                              arch=DEFAULT_ARCH) -> Prepared:
    a = attention_inputs("mlx.sdpa_vector_2pass", q, k, v, scale, mask, causal)
    check_vector("mlx.sdpa_vector_2pass", a)
    tstr = TYPE_STRING[q.dtype]
    gqa = uses_gqa_first_pass(a)
    first = f"sdpa_vector_2pass_1{'_gqa' if gqa else ''}_{tstr}_{a.head_dim}_{a.v_dim}"
    blocks = two_pass_blocks(arch, a.kv_len, a.gqa_factor * a.q_len)
    rows = (a.batch, a.heads, a.q_len)
    partials = torch.empty(*rows, blocks, a.v_dim, dtype=q.dtype, device=q.device)
    sums = torch.empty(*rows, blocks, dtype=torch.float32, device=q.device)
    maxs = torch.empty(*rows, blocks, dtype=torch.float32, device=q.device)
    out = torch.empty(*rows, a.v_dim, dtype=q.dtype, device=q.device)
    is_bool, is_float, mask_args = mask_arguments(a)
    constants = {**vector_constants(a, is_bool, is_float), "blocks": blocks}
    args = [q, span(k), span(v), partials, sums, maxs, None, a.kv_len, *kv_strides(k), *kv_strides(v), a.scale]
    if mask_args:
        args += [mask_args[0], None] if is_bool else [None, mask_args[0]]
        args += mask_args[1:]
    group = (32, a.gqa_factor, a.q_len)
    pass1 = launcher(backend, "mlx_sdpa_vector", first, *args, **threadgroups((a.kv_heads, a.batch, blocks), group), constants=constants)
    second = f"sdpa_vector_2pass_2_{tstr}_{a.v_dim}"
    # Pass 2 reads no function constant (its parameter `blocks` shadows the constant of that name); it gets the
    # first pass's constants anyway so that one compiled specialisation of the file serves both passes.
    pass2 = launcher(backend, "mlx_sdpa_vector", second, partials, sums, maxs, out, blocks,
                     **threadgroups((a.batch * a.heads, a.q_len, 1), (1024, 1, 1)),
                     constants=constants)
    return Prepared(in_order(pass1, pass2), out, (first, second))


def decode_route(q: torch.Tensor, k: torch.Tensor, arch: str = DEFAULT_ARCH) -> str:
    """The decode kernel MLX's eval_gpu picks: "sdpa_vector" or "sdpa_vector_2pass"."""
    large_device = arch[-1] in "ds"
    if (large_device and k.shape[2] >= 1024) or (k.shape[1] < q.shape[1] and k.shape[2] >= 4096):
        return "sdpa_vector_2pass"
    return "sdpa_vector"


def prepare_sdpa_decode(backend: str, q, k, v, *, scale=None, mask=None, causal=False, arch=DEFAULT_ARCH) -> Prepared:
    route = prepare_sdpa_vector_2pass if decode_route(q, k, arch) == "sdpa_vector_2pass" else prepare_sdpa_vector
    return route(backend, q, k, v, scale=scale, mask=mask, causal=causal, arch=arch)


# ---- prefill: steel attention ----

STEEL_BQ, STEEL_WM, STEEL_WN = 32, 4, 1


def attn_params(a: Attention, bq: int, bk: int, out_strides: tuple[int, int, int]) -> bytes:
    """mlx::steel::AttnParams (steel/attn/params.h): 6 ints, a float, 7 ints, then four int64[3] strides."""
    nq, nk = -(-a.q_len // bq), -(-a.kv_len // bk)
    nq_aligned, nk_aligned = a.q_len // bq, a.kv_len // bk
    strides = [*a.q.stride()[:3], *a.k.stride()[:3], *a.v.stride()[:3], *out_strides]
    return packed("6if7i12q", a.batch, a.heads, a.head_dim, a.q_len, a.kv_len, a.gqa_factor, a.scale,
                  nq, nk, nq_aligned, nk_aligned, a.q_len - nq_aligned * bq, a.kv_len - nk_aligned * bk,
                  a.kv_len - a.q_len, *strides)


def prepare_steel_attention(backend: str, q, k, v, *, scale=None, mask=None, causal=False) -> Prepared:
    a = attention_inputs("mlx.steel_attention", q, k, v, scale, mask, causal)
    if a.head_dim != a.v_dim or a.head_dim not in STEEL_HEAD_DIMS:
        raise ValueError(f"mlx.steel_attention: head dims {STEEL_HEAD_DIMS} are instantiated, got {a.head_dim}")
    if a.causal and a.q_len > a.kv_len:
        raise ValueError("mlx.steel_attention: a causal mask needs the queries no longer than the keys")
    bk = 32 if a.head_dim < 128 else 16
    mask_type = "bool_" if a.mask is not None and a.mask.dtype == torch.bool else TYPE_NAME[q.dtype]
    name = (f"steel_attention_{TYPE_NAME[q.dtype]}_bq{STEEL_BQ}_bk{bk}_bd{a.head_dim}_wm{STEEL_WM}_wn{STEEL_WN}"
            f"_mask{mask_type}")
    # MLX writes the output (B, L, H, D) in memory and hands back the (B, H, L, D) view of it.
    storage = torch.empty(a.batch, a.q_len, a.heads, a.v_dim, dtype=q.dtype, device=q.device)
    out = storage.transpose(1, 2)
    args = [q, span(k), span(v), storage, attn_params(a, STEEL_BQ, bk, out.stride()[:3])]
    if a.mask is not None:
        if a.mask.stride(3) != 1 and a.mask.shape[3] > 1:
            raise ValueError("mlx.steel_attention: the mask's last stride must be 1 (MLX would copy it)")
        args += [packed("3q", *a.mask.stride()[:3]), span(a.mask)]
    constants = {"align_Q": a.q_len % STEEL_BQ == 0, "align_K": a.kv_len % bk == 0, "has_mask": a.mask is not None,
                 "do_causal": a.causal, "has_sinks": False, "save_lse": False}
    group = (32, STEEL_WM, STEEL_WN)
    groups = (-(-a.q_len // STEEL_BQ), a.heads, a.batch)
    launch = launcher(backend, "mlx_steel_attention", name, *args, **threadgroups(groups, group),
                      constants=constants)
    return Prepared(launch, out, (name,))


def _attention_op(name: str, prepare, doc: str) -> AnchorOp:
    return register(AnchorOp(name=name, anchor="mlx", family="attention", dtypes=FLOATS, prepare_fn=prepare,
                             doc=doc))


SDPA_VECTOR = _attention_op(
    "mlx.sdpa_vector", prepare_sdpa_vector,
    "case decode (query length <= 8), one pass: sdpa_vector.h sdpa_vector, launched as "
    "scaled_dot_product_attention.cpp sdpa_vector does (one 1024-thread group per query row; boolean or additive "
    "mask, causal).")
SDPA_VECTOR_2PASS = _attention_op(
    "mlx.sdpa_vector_2pass", prepare_sdpa_vector_2pass,
    "case decode, long KV caches, two passes: sdpa_vector_2pass_1 (or its GQA variant "
    "sdpa_vector_2pass_1_gqa for 8 query heads per KV head from 8192 keys) then sdpa_vector_2pass_2, launched as "
    "scaled_dot_product_attention.cpp sdpa_vector_2pass does (blocks by device class: arch=).")
SDPA_DECODE = _attention_op(
    "mlx.sdpa_decode", prepare_sdpa_decode,
    "case decode as MLX routes it (ScaledDotProductAttention::eval_gpu): two passes on large devices from 1024 "
    "keys or under GQA from 4096, else one pass.")
STEEL_ATTENTION = _attention_op(
    "mlx.steel_attention", prepare_steel_attention,
    "case prefill (query length > 8): steel/attn/kernels/steel_attention.h attention, launched as "
    "scaled_dot_product_attention.cpp sdpa_full_self_attention_metal does on GPUs without NAX (BQ 32, BK 32/16, "
    "4x1 simdgroups; causal, boolean or additive mask; output (B, L, H, D) in memory). The host code read is "
    "MLX's repository snapshot (0.32.2 line); the 0.32.4 header adds a value head dim BV (here = BD), a head-dim "
    "split WN (here 1, the kernel as before) and save_lse (off), which that host does not set.")
