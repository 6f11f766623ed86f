"""Rotary position embedding (RoPE) on q and k in one launch, from the cos/sin tables the model computed.

The op is HF transformers' `apply_rotary_pos_emb(q, k, cos, sin)` (half-split, `rotate_half`) or GPT-J's
`rotate_every_two` form (interleaved), with the table lookup folded in:

    rope(q, k, cos, sin, position_ids, offset, interleaved) -> (q_out, k_out)

- q [B, Hq, S, D] and k [B, Hk, S, D]: grouped KV heads (Hq != Hk) are fine.
- cos, sin [P, R], [B or 1, P, R] or [B or 1, 1, P, R]: rows are positions. HF's LLaMA rotary module returns them
  already gathered for the tokens ([B, S, D], P = S, offset 0); a precomputed table [max_positions, R] works too.
  R (the last dimension) is the rotary dimension: R < D is a partial rotary (GPT-NeoX, Phi), whose last D - R
  elements pass through. The tables hold R values per row laid out as the rotation reads them: cat(freqs, freqs)
  for the half-split layout, repeat_interleave(freqs, 2) for the interleaved one.
- The table row of token (b, s) is position_ids[b, s] (position_ids [S] or [B or 1, S], int32 or int64; offset
  must then be 0) or, without ids, offset + s (decoding: offset = tokens already in the cache).

cos/sin are taken as tensors rather than computed in the kernel from a base theta: models compute them in their
own rotary module (with their own scaling: linear, dynamic NTK, YaRN, LLaMA 3), and HF's apply_rotary_pos_emb
receives exactly these tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .spec import DTYPE_NAMES, FLOAT_DTYPES, KernelFamily, LaunchPlan, Scalar, TensorMeta, fits_uint32, like

GROUP = 256  # threads per threadgroup, split between the pair axis (x) and the head axis (y); metal/rope.metal
# declares it as max_total_threads_per_threadgroup(256), so it can grow only with that declaration
HEADS_PER_THREAD = 4  # heads sharing one table read when there is enough work to fill the GPU that way
SIMD = 32  # threads of a SIMD group
FILL_THREADS = 1 << 16  # fewer threads than this with HEADS_PER_THREAD: one head per thread instead


# ---- reference ----


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """HF LLaMA's rotate_half: the second half, negated, then the first half."""
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def rotate_every_two(x: torch.Tensor) -> torch.Tensor:
    """GPT-J's rotate_every_two: each pair (x[2i], x[2i+1]) becomes (-x[2i+1], x[2i])."""
    x1, x2 = x[..., ::2], x[..., 1::2]
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


def gather_tables(cos, sin, position_ids, offset, batch, seq):
    """cos and sin rows of every token, as [B, 1, S, R] (broadcast over heads)."""
    if cos.dim() == 4:
        cos, sin = cos[:, 0], sin[:, 0]
    if cos.dim() == 2:
        cos, sin = cos.unsqueeze(0), sin.unsqueeze(0)
    cos, sin = cos.expand(batch, -1, -1), sin.expand(batch, -1, -1)
    if position_ids is None:
        rows = torch.arange(offset, offset + seq, device=cos.device).expand(batch, seq)
    else:
        rows = position_ids.long().reshape(-1, seq).expand(batch, seq)
    b = torch.arange(batch, device=cos.device).unsqueeze(1)
    return cos[b, rows].unsqueeze(1), sin[b, rows].unsqueeze(1)


def reference(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
              position_ids: torch.Tensor | None, offset: int, interleaved: bool):
    acc = torch.promote_types(q.dtype, torch.float32)  # fp32, or fp64 when the tests ask for a float64 oracle
    c, s = gather_tables(cos.to(acc), sin.to(acc), position_ids, offset, q.shape[0], q.shape[2])
    rotary_dim = c.shape[-1]
    rotate = rotate_every_two if interleaved else rotate_half

    def apply(x: torch.Tensor) -> torch.Tensor:
        x = x.to(acc)
        rot, passed = x[..., :rotary_dim], x[..., rotary_dim:]
        return torch.cat((rot * c + rotate(rot) * s, passed), dim=-1)

    return apply(q).to(q.dtype), apply(k).to(k.dtype)


# ---- checks ----


def validate(inputs) -> None:
    q, k, cos, sin = inputs["q"], inputs["k"], inputs["cos"], inputs["sin"]
    position_ids, offset = inputs["position_ids"], inputs["offset"]
    if q.dim() != 4 or k.dim() != 4:
        raise ValueError(f"q and k must be [batch, heads, seq, head_dim], got {tuple(q.shape)} and {tuple(k.shape)}")
    batch, _, seq, head_dim = q.shape
    if (k.shape[0], k.shape[2], k.shape[3]) != (batch, seq, head_dim):
        raise ValueError(f"k {tuple(k.shape)} must match q {tuple(q.shape)} in batch, seq and head_dim")
    if cos.shape != sin.shape:
        raise ValueError(f"cos {tuple(cos.shape)} and sin {tuple(sin.shape)} must have one shape")
    if not cos.is_floating_point() or cos.dtype != sin.dtype:
        raise ValueError(f"cos and sin must be floating point with one dtype, got {cos.dtype} and {sin.dtype}")
    if cos.dim() not in (2, 3, 4) or (cos.dim() == 4 and cos.shape[1] != 1):
        raise ValueError(f"cos and sin must be [positions, rotary_dim], [batch, positions, rotary_dim] or "
                         f"[batch, 1, positions, rotary_dim], got {tuple(cos.shape)}")
    if cos.dim() >= 3 and cos.shape[0] not in (1, batch):
        raise ValueError(f"cos and sin have batch {cos.shape[0]}; q has batch {batch}")
    rotary_dim, rows = cos.shape[-1], cos.shape[-2]
    if rotary_dim % 2 or not 0 < rotary_dim <= head_dim:
        raise ValueError(f"the rotary dimension (cos.shape[-1] = {rotary_dim}) must be even and in "
                         f"[2, head_dim = {head_dim}]")
    if position_ids is None:
        if offset < 0 or offset + seq > rows:
            raise ValueError(f"positions offset + [0, {seq}) with offset {offset} must lie in the {rows} rows of "
                             f"cos and sin")
        return
    if position_ids.is_floating_point() or position_ids.is_complex() or position_ids.dtype == torch.bool:
        raise ValueError(f"position_ids must be an integer tensor, got {position_ids.dtype}")
    if offset != 0:
        raise ValueError(f"give either position_ids or an offset, not both (offset {offset})")
    if position_ids.shape not in ((seq,), (1, seq), (batch, seq)):
        raise ValueError(f"position_ids must be [seq], [1, seq] or [batch, seq] = [{batch}, {seq}], "
                         f"got {tuple(position_ids.shape)}")


def reads_position_values(inputs) -> bool:
    """Whether there are position ids check_position_values reads: on the CPU (elsewhere reading them would sync
    the device)."""
    position_ids = inputs["position_ids"]
    return position_ids is not None and position_ids.device.type == "cpu"


def check_position_values(inputs) -> None:
    """The position ids' values, on every call (validate's verdict is cached per shapes): each must name a row."""
    position_ids = inputs["position_ids"]
    if reads_position_values(inputs) and position_ids.numel():
        rows = inputs["cos"].shape[-2]
        low, high = int(position_ids.min()), int(position_ids.max())
        if low < 0 or high >= rows:
            raise ValueError(f"position_ids must lie in [0, {rows}) (the rows of cos and sin), got [{low}, {high}]")


def supported_table_dtype(inputs) -> str | None:
    """cos/sin are neither in q's dtype nor float32"""
    q, cos = inputs["q"], inputs["cos"]
    if cos.dtype not in (q.dtype, torch.float32):
        return f"cos and sin are {cos.dtype} with q in {q.dtype}; the kernel reads tables in q's dtype or float32"
    return None


def supported_position_dtype(inputs) -> str | None:
    """position_ids are neither int32 nor int64"""
    ids = inputs["position_ids"]
    if ids is not None and ids.dtype not in (torch.int32, torch.int64):
        return f"position_ids are {ids.dtype}; the kernel reads int32 or int64"
    return None


# ---- launch ----


def units_per_row(head_dim: int, rotary_dim: int, interleaved: bool, dtype: torch.dtype) -> int:
    """Threads along a head row, each one 16-byte chunk (n elements of the dtype): chunks of the first rotary
    half (half-split; its pairs' second elements come along) or of the rotary part (interleaved), then chunks of
    the pass-through part."""
    n = 16 // torch.empty((), dtype=dtype).element_size()
    rotated = rotary_dim if interleaved else rotary_dim // 2
    return -(-rotated // n) + -(-(head_dim - rotary_dim) // n)


def tokens_per_group(threads_per_token: int, tokens: int) -> int:
    """Tokens a threadgroup takes: as many as GROUP threads hold, the most that fill whole SIMD groups where some
    count does (80 threads a token: 2 tokens, 160 threads, rather than 3 with a half-empty SIMD group)."""
    most = max(1, min(GROUP // threads_per_token, tokens))
    whole = [z for z in range(most, 0, -1) if threads_per_token * z % SIMD == 0]
    return whole[0] if whole else most


@dataclass(frozen=True)
class RopeGrid:
    """rope's launch shape, shared with rope_kv_append (metal/rope.metal): the kernel variant, buffers 0-15
    (ROPE_COMMON_PARAMS), units along a head row (grid x), blocks of heads (grid y), tokens (grid z) and the
    threadgroup. A kernel's own buffers follow, then position_ids when given."""

    variant: str  # the host name's tail: [_ids32|_ids64][_f32tables]_<dtype>
    buffers: tuple[str | Scalar, ...]
    units: int
    head_blocks: int
    tokens: int
    group_size: tuple[int, int, int]
    constants: dict


def rope_grid(q: TensorMeta, k: TensorMeta, cos: TensorMeta, position_ids: TensorMeta | None, offset: int,
              interleaved: bool) -> RopeGrid:
    batch, q_heads, seq, head_dim = q.shape
    k_heads = k.shape[1]
    rotary_dim, rows = cos.shape[-1], cos.shape[-2]
    table_batch = cos.shape[0] if len(cos.shape) >= 3 else 1
    heads = q_heads + k_heads
    units = units_per_row(head_dim, rotary_dim, interleaved, q.dtype)
    per_thread = HEADS_PER_THREAD if units * batch * seq * heads >= HEADS_PER_THREAD * FILL_THREADS else 1
    head_blocks = -(-heads // per_thread)
    # A power of two along the row (a 128-wide bf16 half-split row is 8 units), then the token's head blocks, then
    # tokens. Taking only the head blocks that exist and filling the rest of GROUP with tokens keeps threadgroups
    # large where a token has few head blocks (LLaMA-3's 32 + 8 heads, 4 a thread: 10 blocks), instead of one
    # 80-thread group per token whose third SIMD group is half empty.
    group_x = 1
    while group_x < min(units, GROUP):
        group_x *= 2
    group_y = min(GROUP // group_x, head_blocks)
    group_z = tokens_per_group(group_x * group_y, batch * seq)

    ids = position_ids
    ids_batch = ids.shape[0] if ids is not None and len(ids.shape) == 2 else 1
    source = "" if ids is None else "_ids32" if ids.dtype == torch.int32 else "_ids64"
    table_kind = "" if cos.dtype == q.dtype else "_f32tables"
    return RopeGrid(
        variant=f"{source}{table_kind}_{DTYPE_NAMES[q.dtype]}",
        buffers=(
            "q", "k", "cos", "sin", "q_out", "k_out",
            Scalar(q_heads, "uint"), Scalar(k_heads, "uint"), Scalar(seq, "uint"), Scalar(head_dim, "uint"),
            Scalar(rotary_dim, "uint"), Scalar(rows, "uint"),
            Scalar(rows * rotary_dim if table_batch > 1 else 0, "uint"),
            Scalar(seq if ids_batch > 1 else 0, "uint"),
            Scalar(offset, "uint"), Scalar(per_thread, "uint"),
        ),
        units=units,
        head_blocks=head_blocks,
        tokens=batch * seq,
        group_size=(group_x, group_y, group_z),
        constants={"interleaved": bool(interleaved)},
    )


def plan(q: TensorMeta, k: TensorMeta, cos: TensorMeta, sin: TensorMeta, position_ids: TensorMeta | None,
         offset: int, interleaved: bool) -> LaunchPlan:
    grid = rope_grid(q, k, cos, position_ids, offset, interleaved)
    return LaunchPlan(
        kernel=f"rope{grid.variant}",
        buffers=grid.buffers + (() if position_ids is None else ("position_ids",)),
        threads=(grid.units, grid.head_blocks, grid.tokens),
        group_size=grid.group_size,
        constants=grid.constants,
    )


# ---- examples ----


def tables(positions: int, rotary_dim: int, interleaved: bool, dtype: torch.dtype, base: float = 10000.0,
           batch: int | None = None):
    """cos and sin as models compute them: [positions, R] (or [batch, positions, R] with shifted positions)."""
    inv_freq = 1.0 / base ** (torch.arange(0, rotary_dim, 2, dtype=torch.float64) / rotary_dim)
    pos = torch.arange(positions, dtype=torch.float64)
    if batch is not None:
        pos = pos + 3 * torch.arange(batch, dtype=torch.float64).unsqueeze(1)  # a different row per batch
    freqs = pos.unsqueeze(-1) * inv_freq
    emb = freqs.repeat_interleave(2, dim=-1) if interleaved else torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def examples(dtype: torch.dtype):
    gen = torch.Generator().manual_seed(0)

    def qk(batch, q_heads, k_heads, seq, head_dim):
        return (torch.randn(batch, q_heads, seq, head_dim, generator=gen).to(dtype),
                torch.randn(batch, k_heads, seq, head_dim, generator=gen).to(dtype))

    out = []
    # HF LLaMA prefill: cos/sin already gathered per token, [B, S, D]; grouped KV heads.
    q, k = qk(2, 4, 2, 5, 64)
    out.append((q, k, *tables(5, 64, False, dtype, batch=2), None, 0, False))
    # Decode from a table: one token at offset 33 of a [40, D] table; q/k heads 3 and 1.
    q, k = qk(1, 3, 1, 1, 66)
    out.append((q, k, *tables(40, 66, False, dtype), None, 33, False))
    # GPT-J interleaved, partial rotary (62 of 70: 31 pairs + 4 pass-through units), 31 tokens from offset 2.
    q, k = qk(1, 2, 1, 31, 70)
    out.append((q, k, *tables(40, 62, True, dtype), None, 2, True))
    # GPT-NeoX partial rotary (16 of 24) with int64 position ids [B, S] into a table.
    q, k = qk(2, 3, 3, 7, 24)
    ids = torch.randint(0, 50, (2, 7), generator=gen)
    out.append((q, k, *tables(50, 16, False, dtype), ids, 0, False))
    # int32 ids shared by the batch, interleaved, the smallest head (one pair), odd pass-through tail (D = 5).
    q, k = qk(3, 1, 1, 33, 5)
    ids = torch.randint(0, 64, (33,), generator=gen, dtype=torch.int32)
    out.append((q, k, *tables(64, 2, True, dtype), ids, 0, True))
    # float32 tables with a half-precision q and k; [1, 1, P, R] tables (HF's unsqueezed layout).
    q, k = qk(1, 2, 2, 32, 32)
    cos, sin = tables(32, 32, False, torch.float32)
    out.append((q, k, cos[None, None], sin[None, None], None, 0, False))
    return out


def fallback_examples(dtype: torch.dtype):
    gen = torch.Generator().manual_seed(1)
    q = torch.randn(1, 2, 3, 8, generator=gen).to(dtype)
    k = torch.randn(1, 1, 3, 8, generator=gen).to(dtype)
    other = torch.bfloat16 if dtype == torch.float16 else torch.float16
    ids = torch.tensor([4, 0, 2], dtype=torch.int16)
    return [
        (q, k, *tables(8, 8, False, other), None, 1, False),
        (q, k, *tables(8, 8, True, dtype), ids, 0, True),
    ]


ROPE = KernelFamily(
    name="rope",
    source="rope.metal",
    schema="(Tensor q, Tensor k, Tensor cos, Tensor sin, Tensor? position_ids, int offset, bool interleaved) "
           "-> (Tensor, Tensor)",
    reference=reference,
    dtypes=FLOAT_DTYPES,
    outputs={"q_out": like("q"), "k_out": like("k")},
    plan=plan,
    validate=validate,
    validate_is_static=True,
    check_values=check_position_values,
    values_to_check=reads_position_values,
    constraints=(supported_table_dtype, supported_position_dtype, fits_uint32("q"), fits_uint32("k"),
                 fits_uint32("cos")),
    description="rotary position embedding of q and k (half-split or interleaved, partial rotary, position ids "
                "or offset)",
    fusions="table lookup by position, rotation of q and k, pass-through of non-rotary dims in one launch",
    dtype_args=("q", "k"),
    examples=examples,
    fallback_examples=fallback_examples,
)
FAMILIES = (ROPE,)
