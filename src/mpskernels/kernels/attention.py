"""Scaled dot-product attention with grouped KV heads, causal masking, an additive or boolean mask and a KV-cache
length.

out = softmax(q k^T * scale + mask) v, computed per (batch, query head) over the first `kv_len` key positions.

- q [B, Hq, Sq, D]; k, v [B, Hk, Sk, D] with Hq a multiple of Hk: query head h reads KV head h // (Hq // Hk).
- `kv_len` (default Sk): only key positions [0, kv_len) are attended, so k and v may be an in-place KV cache of
  capacity Sk whose tail holds anything.
- `causal`: query i (0-based) of the Sq queries sits at absolute position kv_len - Sq + i and attends keys at
  positions <= that. With Sq == kv_len this is PyTorch SDPA's is_causal; with a KV cache it is the usual
  "new tokens at the end" rule (decode: Sq == 1 sees every cached key). Needs kv_len >= Sq.
- `mask`: additive in q's dtype, or boolean (True: attend, as SDPA's bool attn_mask), broadcastable to
  [B, Hq, Sq, kv_len]; its last dimension is 1, kv_len or Sk (then only the first kv_len columns are read). A row
  whose scores are all -inf (or whose keys are all hidden) gives NaN, like softmax does.
- `scale` defaults to 1 / sqrt(D).

Sq <= DECODE_MAX_QUERIES runs the decode kernels: the KV length is split into blocks over threadgroups (the query
heads sharing a KV head in one threadgroup), attention_decode_split writes each block's partial softmax results
and attention_decode_merge combines them (two dispatches); a KV length of one block runs attention_decode alone.
Longer queries run attention_prefill (flash-attention tiling). All are in metal/attention.metal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .spec import DTYPE_NAMES, FLOAT_DTYPES, Dispatch, KernelFamily, LaunchPlan, Scalar, Scratch, TensorMeta, like

HEAD_DIMS = (64, 80, 96, 128)  # instantiated in metal/attention.metal
DECODE_MAX_QUERIES = 8  # queries per call that still take the decode kernels
PREFILL_BQ = 32  # query rows per prefill threadgroup: PREFILL_BQ in metal/attention.metal
PREFILL_THREADS = 128  # PREFILL_SIMD_GROUPS * 32
DECODE_THREADS = 128  # DECODE_SIMD_GROUPS * 32
DECODE_SIMD_GROUPS = 4
MERGE_THREADS = 256  # MERGE_SIMD_GROUPS * 32
DECODE_VEC_BYTES = 16  # a lane loads 16 bytes of a key row at a time
DECODE_ROWS = 4  # query rows per decode threadgroup: DECODE_ROWS in metal/attention.metal
DECODE_TILE = 32  # keys a decode SIMD group scores at once (one per lane): DECODE_TILE in metal/attention.metal
DECODE_SHORT_TILE = 8  # the same under the decode_short_tiles constant: DECODE_SHORT_TILE in metal/attention.metal
# The KV length is split into blocks until the decode grid has about this many threadgroups. A documented constant,
# not the GPU's core count (PyTorch exposes no core count, and asking IOKit costs more than a decode step): 1024
# threadgroups of 128 threads keep every core of the largest Apple GPUs (60-80 cores, each holding several such
# threadgroups at once) busy, and on smaller GPUs the extra blocks only queue up.
DECODE_TARGET_THREADGROUPS = 1024
# A block holds at least DECODE_MIN_BLOCK_KEYS keys, and enough that its K and V bytes are at least
# DECODE_PARTIAL_SHARE times the partial results it writes and the merge reads back (at most 1/8 more traffic than
# the one-pass minimum); so a short KV length runs in one pass. At most DECODE_MAX_BLOCKS blocks.
DECODE_MIN_BLOCK_KEYS = 32
DECODE_PARTIAL_SHARE = 8
DECODE_MAX_BLOCKS = 1024
# A split block holds a multiple of DECODE_BLOCK_TILES tiles, one share per SIMD group of its threadgroup: the SIMD
# groups take a block's tiles round-robin, so a block of 3 tiles left one of 4 SIMD groups idle (and 2 tiles, two)
# while holding its registers until the threadgroup's merge. Rounding a block's tiles up to a multiple of 4 keeps
# the longest SIMD group's serial loop (ceil(tiles / 4) tiles) unchanged and needs fewer threadgroups and partials:
# B1 Hq32/Hk8 N2048 bf16 ran 22 blocks of 96 keys (176 threadgroups at 3/4), now 16 of 128 (128, all busy).
DECODE_BLOCK_TILES = DECODE_SIMD_GROUPS
# A decode threadgroup takes DECODE_ROWS query rows (the GQA heads of a KV head) so that each K and V load serves
# all of them; a SIMD group's serial work is then its tiles times those rows. Where the grid would still have fewer
# than DECODE_ROW_SPLIT_BELOW threadgroups (a short KV length at batch 1: B1 Hq32/Hk8 N512 D128 ran 32 threadgroups,
# one SIMD group per GPU core, each ~2000 dependent instructions long: 31 us of split pass on the H100 lane under
# ncu, against MLX's 10.5 us for the whole op), the rows are halved until it has: more threadgroups, each with less
# serial work, re-reading K and V from the cache.
DECODE_ROW_SPLIT_BELOW = DECODE_TARGET_THREADGROUPS // 2
# Where a split grid of 32-key tiles stays below DECODE_SHORT_TILES_BELOW threadgroups even after the row halving
# above, SIMD groups take tiles of DECODE_SHORT_TILE keys instead (the kernels' decode_short_tiles constant): blocks
# can then be 4 times shorter and 4 times as many, and a SIMD group's serial loop is one tile of 8 keys, not 32.
# B1 Hq32/Hk8 N512 D128 ran 128 threadgroups of one 32-key tile per SIMD group and one row: 0.59x (fp32) and
# 0.73x (16-bit) of MLX's sdpa_vector_2pass (~2048 SIMD groups of 8 keys) on the H100 lane. Plans that change
# (Hq32/Hk8 D128; threadgroups with 32-key -> 8-key tiles): B1 N256 64 -> 256, N512 128 -> 512, N1024 256 -> 1024
# (fp32: 512 of 2 rows); B2 N256 128 -> 512, N512 256 -> 1024 (fp32: 512); B4 N256 256 -> 1024 (fp32: 512). Kept:
# grids already at DECODE_SHORT_TILES_BELOW (B1 N >= 2048, B2 N >= 1024, B4 N >= 512, B8), and one-pass plans
# (N <= 128 here: shorter blocks would add the merge dispatch, whose cost against a shorter loop is unmeasured).
# Measured on the H100 lane, side by side: B1 N512 D128 bf16 14.1 -> 9.0 us, fp32 20.4 -> 9.8 us (1.13x and 1.19x
# MLX's sdpa_vector_2pass in that run, from 0.72x and 0.58x). The other changed plans were not in that run.
# The same holds where the row halving went down to one row per threadgroup to reach DECODE_ROW_SPLIT_BELOW (the
# grid reached it, but each of a KV head's rows re-reads K and V in its own threadgroup): 8-key tiles give blocks
# 4 times shorter, so the halving stops at 2 rows, with half the re-reads and the same longest serial loop (B4 N512
# D128: 4 row groups x 4 blocks of 128 keys -> 2 x 8 of 64 in 16-bit, 2 x 16 of 32 in fp32). Plans that change
# (Hq32/Hk8, D64 and D128): B1 N2048, B2 N1024, B4 N512, B8 N256. H200 lane, side by side in one device session
# (not an Apple GPU): B4 N512 D128 bf16 16.6 -> 13.8 us, fp32 20.8 -> 17.9; B1 N2048 D128 bf16 16.8 -> 14.3, fp32
# 21.0 -> 19.3; B1 N2048 D64 bf16 11.8 -> 10.8, fp32 13.8 -> 13.8. Tried in the same session and dropped: 8-key
# tiles below 1024 threadgroups (the threshold doubled), which also took B4 N2048 (bf16 27.1 -> 41.9 us, fp32
# 50.1 -> 54.5) and B8 N512 (bf16 19.2 -> 23.1, though fp32 27.4 -> 22.2) onto them.
# Tried (H100 lane, 2026-12-07, side by side in one device call, --ours-only): fp32 split plans on 8-key tiles at every
# grid size (ptxas: 103-113 registers against 124), for more SIMD groups resident per core: 0.90-1.20x over the 16
# fp32 decode points, geomean 0.99 (B8 N512 D128 17.2 -> 14.3 us; B1 N8192 D128 33.4 -> 37.0, B1 N32768 D64 60.8 ->
# 66.7, B8 N32768 D64 383.6 -> 417.6): the 8-key tile's extra folds cost more than the registers save. Not kept.
DECODE_SHORT_TILES_BELOW = DECODE_ROW_SPLIT_BELOW


def _kv_length(k: torch.Tensor | TensorMeta, kv_len: int | None) -> int:
    return k.shape[2] if kv_len is None else kv_len


def reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, causal: bool,
              scale: float | None = None, kv_len: int | None = None) -> torch.Tensor:
    compute = torch.promote_types(q.dtype, torch.float32)  # fp32, or fp64 when the test oracle passes fp64
    n = _kv_length(k, kv_len)
    q_len, head_dim = q.shape[2], q.shape[3]
    group = q.shape[1] // k.shape[1]
    keys = k[:, :, :n].to(compute).repeat_interleave(group, dim=1)
    values = v[:, :, :n].to(compute).repeat_interleave(group, dim=1)
    scale = 1.0 / math.sqrt(head_dim) if scale is None else scale
    # As the kernels: q times the scale's part up to 1, the dot products times the rest, so neither product
    # overflows unless the scaled score does (q @ k^T * scale overflowed for large q, k and a small scale).
    q_factor, score_factor = math.copysign(min(abs(scale), 1.0), scale), max(abs(scale), 1.0)
    scores = (q.to(compute) * q_factor) @ keys.transpose(-1, -2) * score_factor
    if mask is not None:
        m = mask if mask.dtype == torch.bool else mask.to(compute)
        m = m if m.shape[-1] == 1 else m[..., :n]
        scores = scores.masked_fill(~m, float("-inf")) if m.dtype == torch.bool else scores + m
    if causal:
        query_pos = torch.arange(q_len, device=q.device) + (n - q_len)
        visible = torch.arange(n, device=q.device)[None, :] <= query_pos[:, None]
        scores = scores.masked_fill(~visible, float("-inf"))
    return (torch.softmax(scores, dim=-1) @ values).to(q.dtype)


def _mask_strides(mask: TensorMeta) -> tuple[int, int, int, int]:
    """Element strides (b, h, q, key) of the contiguous mask, 0 along broadcast dimensions."""
    shape = (1,) * (4 - len(mask.shape)) + tuple(mask.shape)
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step if size != 1 else 0)
        step *= size
    strides.reverse()
    return tuple(strides)


@dataclass(frozen=True)
class DecodeLayout:
    """The decode kernels' lane layout for a dtype and head dim (DecodeLayout in metal/attention.metal), and the
    keys of a SIMD group's tile (DECODE_TILE, or DECODE_SHORT_TILE under decode_short_tiles)."""

    elements: int  # elements of a key row per lane (16 bytes)
    lanes_per_key: int
    rows: int  # query rows per threadgroup
    tile: int = DECODE_TILE

    @classmethod
    def of(cls, dtype: torch.dtype, head_dim: int, tile: int = DECODE_TILE) -> "DecodeLayout":
        elements = DECODE_VEC_BYTES // torch.empty((), dtype=dtype).element_size()
        chunks = head_dim // elements
        lanes = 8 if chunks <= 8 else 16 if chunks <= 16 else 32
        return cls(elements, lanes, DECODE_ROWS, tile)

    @property
    def step(self) -> int:
        """The granule of a block's length: a SIMD group's tile, so that only a block's last tile is partial (the
        kernel checks the block's end in that tile alone)."""
        return self.tile


def decode_min_block_keys(rows: int, head_dim: int, dtype: torch.dtype) -> int:
    """The fewest keys of a block for a threadgroup of `rows` query rows (see DECODE_PARTIAL_SHARE)."""
    partial_bytes = 2 * rows * (head_dim + 2) * 4  # fp32 (O, m, l) per row, written then read back
    kv_bytes_per_key = 2 * head_dim * torch.empty((), dtype=dtype).element_size()
    return max(DECODE_MIN_BLOCK_KEYS, -(-DECODE_PARTIAL_SHARE * partial_bytes // kv_bytes_per_key))


def decode_split(kv_len: int, threadgroups: int, step: int, min_keys: int | None = None) -> tuple[int, int]:
    """(blocks, keys per block) for a decode grid of `threadgroups` threadgroups per block: blocks enough to reach
    DECODE_TARGET_THREADGROUPS, each at least `min_keys` keys (DECODE_MIN_BLOCK_KEYS by default), a block a
    multiple of `step` keys (only the last block has a partial step) and, when split, of DECODE_BLOCK_TILES steps
    (every SIMD group of a block gets the same share; the longest share is as long as without the rounding)."""
    min_keys = DECODE_MIN_BLOCK_KEYS if min_keys is None else min_keys
    wanted = -(-DECODE_TARGET_THREADGROUPS // max(threadgroups, 1))
    blocks = max(1, min(wanted, kv_len // min_keys, DECODE_MAX_BLOCKS))
    block_len = -(-kv_len // blocks)
    block_len = -(-block_len // step) * step
    if blocks > 1:
        granule = step * DECODE_BLOCK_TILES
        block_len = -(-block_len // granule) * granule
    return -(-kv_len // block_len), block_len


@dataclass(frozen=True)
class DecodeGrid:
    rows_per_group: int  # query rows of a threadgroup (at most DECODE_ROWS)
    row_groups: int  # threadgroups per KV head and block
    blocks: int
    block_len: int
    short_tiles: bool = False  # tiles of DECODE_SHORT_TILE keys (the kernels' decode_short_tiles constant)

    def threadgroups(self, batch: int, kv_heads: int) -> int:
        return self.blocks * self.row_groups * kv_heads * batch


def decode_grid(batch: int, kv_heads: int, group_rows: int, n: int, head_dim: int, dtype: torch.dtype,
                tile: int | None = None) -> DecodeGrid:
    """The tile, KV split and rows per threadgroup: tiles of DECODE_TILE keys unless short_tiles_pay says that
    plan would run better on DECODE_SHORT_TILE (`tile` forces one of the two)."""
    if tile is not None:
        return _decode_grid_of(batch, kv_heads, group_rows, n, DecodeLayout.of(dtype, head_dim, tile), head_dim,
                               dtype)
    grid = decode_grid(batch, kv_heads, group_rows, n, head_dim, dtype, DECODE_TILE)
    if not short_tiles_pay(grid, batch, kv_heads, group_rows):
        return grid
    return decode_grid(batch, kv_heads, group_rows, n, head_dim, dtype, DECODE_SHORT_TILE)


def short_tiles_pay(grid: DecodeGrid, batch: int, kv_heads: int, group_rows: int) -> bool:
    """Whether a plan of 32-key tiles should take 8-key tiles instead: it splits the KV length, and it stays below
    DECODE_SHORT_TILES_BELOW threadgroups or had to give each threadgroup a single one of several rows (see
    DECODE_SHORT_TILES_BELOW)."""
    if grid.blocks == 1:
        return False
    rows_exhausted = grid.rows_per_group == 1 and group_rows > 1
    return grid.threadgroups(batch, kv_heads) < DECODE_SHORT_TILES_BELOW or rows_exhausted


def _decode_grid_of(batch: int, kv_heads: int, group_rows: int, n: int, layout: DecodeLayout, head_dim: int,
                    dtype: torch.dtype) -> DecodeGrid:
    """The KV split and rows per threadgroup for the layout's tile: DECODE_ROWS rows, halved while the grid stays
    below DECODE_ROW_SPLIT_BELOW threadgroups."""
    per_group = layout.rows
    while True:
        row_groups = -(-group_rows // per_group)
        min_keys = decode_min_block_keys(min(per_group, group_rows), head_dim, dtype)
        blocks, block_len = decode_split(n, batch * kv_heads * row_groups, layout.step, min_keys)
        if per_group == 1 or per_group >= 2 * group_rows or \
                blocks * row_groups * kv_heads * batch >= DECODE_ROW_SPLIT_BELOW:
            return DecodeGrid(per_group, row_groups, blocks, block_len, layout.tile == DECODE_SHORT_TILE)
        per_group //= 2


def decode_plan(q: TensorMeta, k: TensorMeta, buffers: tuple, bool_mask: str | None, constants: dict, n: int
                ) -> LaunchPlan:
    """One pass when the KV length is one block; else the split pass and the merge pass. Rows per threadgroup
    bind [[buffer(17)]]; `bool_mask` binds [[buffer(18)]] or [[buffer(20)]] (None: no boolean mask)."""
    batch, q_heads, q_len, head_dim = q.shape
    kv_heads = k.shape[1]
    grid_of = decode_grid(batch, kv_heads, q_heads // kv_heads * q_len, n, head_dim, q.dtype)
    blocks, block_len = grid_of.blocks, grid_of.block_len
    constants = {**constants, "decode_short_tiles": grid_of.short_tiles}
    per_group = Scalar(grid_of.rows_per_group, "uint")
    dtype = DTYPE_NAMES[q.dtype]
    grid = (blocks * grid_of.row_groups * DECODE_THREADS, kv_heads, batch)  # a block's row groups are neighbours
    if blocks == 1:
        return LaunchPlan(kernel=f"attention_decode_d{head_dim}_{dtype}",
                          buffers=buffers + (Scalar(block_len, "uint"), per_group, bool_mask),
                          threads=grid, group_size=(DECODE_THREADS, 1, 1), constants=constants)
    rows = batch * q_heads * q_len
    split = buffers[:4] + ("o_part",) + buffers[5:] + (Scalar(block_len, "uint"), per_group, "m_part", "l_part",
                                                       bool_mask)
    merge = Dispatch(kernel=f"attention_decode_merge_d{head_dim}_{dtype}",
                     buffers=("o_part", "m_part", "l_part", "out", Scalar(blocks, "uint")),
                     threads=(rows * MERGE_THREADS, 1, 1), group_size=(MERGE_THREADS, 1, 1))
    return LaunchPlan(
        kernel=f"attention_decode_split_d{head_dim}_{dtype}", buffers=split, threads=grid,
        group_size=(DECODE_THREADS, 1, 1), constants=constants, then=(merge,),
        scratch=(Scratch("o_part", (rows, blocks, head_dim), torch.float32),
                 Scratch("m_part", (rows, blocks), torch.float32),
                 Scratch("l_part", (rows, blocks), torch.float32)),
    )


def plan(q: TensorMeta, k: TensorMeta, v: TensorMeta, mask: TensorMeta | None, causal: bool,
         scale: float | None = None, kv_len: int | None = None) -> LaunchPlan:
    batch, q_heads, q_len, head_dim = q.shape
    kv_heads, capacity = k.shape[1], k.shape[2]
    n = _kv_length(k, kv_len)
    strides = _mask_strides(mask) if mask is not None else (0, 0, 0, 0)
    is_bool = mask is not None and mask.dtype == torch.bool
    bool_mask = "mask" if is_bool else None  # the last buffer of each kernel
    buffers = (
        "q", "k", "v", "mask" if mask is not None and not is_bool else None, "out",
        Scalar(1.0 / math.sqrt(head_dim) if scale is None else float(scale), "float"),
        Scalar(q_heads, "uint"), Scalar(q_heads // kv_heads, "uint"), Scalar(q_len, "uint"),
        Scalar(capacity, "uint"), Scalar(n, "uint"), Scalar(bool(causal), "bool"),
        *(Scalar(s, "uint") for s in strides),
    )
    constants = {"has_mask": mask is not None and not is_bool, "has_bool_mask": is_bool,
                 "decode_short_tiles": False}  # decode_plan sets it
    if q_len <= DECODE_MAX_QUERIES:
        return decode_plan(q, k, buffers, bool_mask, constants, n)
    return LaunchPlan(
        kernel=f"attention_prefill_d{head_dim}_{DTYPE_NAMES[q.dtype]}",
        buffers=buffers + (bool_mask,),
        threads=(-(-q_len // PREFILL_BQ) * PREFILL_THREADS, q_heads, batch),
        group_size=(PREFILL_THREADS, 1, 1),
        constants=constants,
    )


def validate(inputs) -> None:
    # The dispatcher drops trailing arguments left at their defaults (scale, kv_len).
    q, k, v, mask, causal, kv_len = (inputs.get(n) for n in ("q", "k", "v", "mask", "causal", "kv_len"))
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(f"q, k and v must be 4-D [batch, heads, seq, head_dim], got {tuple(q.shape)}, "
                         f"{tuple(k.shape)} and {tuple(v.shape)}")
    if k.shape != v.shape:
        raise ValueError(f"k and v must have one shape, got {tuple(k.shape)} and {tuple(v.shape)}")
    if q.shape[0] != k.shape[0] or q.shape[3] != k.shape[3]:
        raise ValueError(f"q {tuple(q.shape)} and k {tuple(k.shape)} must agree in batch and head_dim")
    if q.shape[3] == 0:
        raise ValueError(f"q, k and v have head_dim 0: there is nothing to attend over (the default scale "
                         f"1 / sqrt(head_dim) is undefined)")
    if k.shape[1] == 0 or q.shape[1] % k.shape[1]:
        raise ValueError(f"q's {q.shape[1]} heads must be a multiple of k's {k.shape[1]} heads")
    n = _kv_length(k, kv_len)
    if not 0 <= n <= k.shape[2]:
        raise ValueError(f"kv_len {n} must lie in [0, {k.shape[2]}] (k's sequence length)")
    if causal and n < q.shape[2]:
        raise ValueError(f"causal attention needs kv_len >= the {q.shape[2]} queries (the queries are the last "
                         f"positions of the sequence), got kv_len {n}")
    if mask is not None:
        if mask.dtype not in (q.dtype, torch.bool):
            raise ValueError(f"mask has dtype {mask.dtype}: it must be bool or q's dtype ({q.dtype})")
        want = (q.shape[0], q.shape[1], q.shape[2])
        lead = (1,) * (4 - mask.dim()) + tuple(mask.shape[:-1]) if 1 <= mask.dim() <= 4 else None
        if lead is None or any(m not in (1, w) for m, w in zip(lead, want)) or \
                mask.shape[-1] not in (1, n, k.shape[2]):
            raise ValueError(f"mask {tuple(mask.shape)} must broadcast to [{', '.join(map(str, want))}, kv_len] "
                             f"with a last dimension of 1, kv_len ({n}) or k's length ({k.shape[2]})")


def head_dim_supported(inputs) -> str | None:
    """head_dim is not 64, 80, 96 or 128"""
    d = inputs["q"].shape[-1]
    return None if d in HEAD_DIMS else f"head_dim {d} has no kernel (supported: {', '.join(map(str, HEAD_DIMS))})"


def has_keys(inputs) -> str | None:
    """kv_len is 0 (nothing to attend)"""
    return "kv_len is 0" if _kv_length(inputs["k"], inputs.get("kv_len")) == 0 else None


def fits_uint32(inputs) -> str | None:
    """a tensor has 2^32 elements or more"""
    for name in ("q", "k", "mask"):
        t = inputs[name]
        if t is not None and t.numel() >= 2**32:
            return f"{name} has {t.numel()} elements, more than 32-bit strides cover"
    return None


def _randn(gen, *shape):
    return torch.randn(*shape, generator=gen)


def examples(dtype: torch.dtype):
    gen = torch.Generator().manual_seed(0)

    def qkv(batch, q_heads, kv_heads, q_len, kv_cap, head_dim):
        return (_randn(gen, batch, q_heads, q_len, head_dim).to(dtype),
                _randn(gen, batch, kv_heads, kv_cap, head_dim).to(dtype),
                _randn(gen, batch, kv_heads, kv_cap, head_dim).to(dtype))

    cases = []
    # decode, one token over a KV cache (capacity 70, 65 valid), grouped heads, D=128
    cases.append((*qkv(2, 2, 1, 1, 70, 128), None, False, None, 65))
    # decode, 8 new tokens with causal masking and a full per-head mask, D=80
    q, k, v = qkv(1, 2, 2, 8, 33, 80)
    cases.append((q, k, v, _randn(gen, 1, 2, 8, 33).to(dtype), True, None, None))
    # decode, 3 tokens, 64 query heads over 8 KV heads (2 heads share a threadgroup), mask of width kv_len, D=64
    q, k, v = qkv(1, 64, 8, 3, 9, 64)
    cases.append((q, k, v, _randn(gen, 3, 5).to(dtype), True, 0.1, 5))
    # decode, padding mask [B, 1, 1, Sk] with -inf, explicit scale, D=96
    q, k, v = qkv(2, 1, 1, 1, 37, 96)
    pad = torch.zeros(2, 1, 1, 37)
    pad[0, ..., 30:] = float("-inf")
    pad[1, ..., :3] = float("-inf")
    cases.append((q, k, v, pad.to(dtype), False, 0.125, None))
    # prefill, causal self-attention, 33 queries and keys, grouped heads, D=64
    cases.append((*qkv(1, 2, 1, 33, 33, 64), None, True, None, None))
    # prefill, chunked: 31 new tokens at the end of 67 cached positions (capacity 70), causal + mask, D=80
    q, k, v = qkv(2, 1, 1, 31, 70, 80)
    cases.append((q, k, v, _randn(gen, 2, 1, 31, 70).to(dtype), True, None, 67))
    # prefill, not causal, 40 queries over 37 keys, mask with -inf over a whole key block, D=96 (fully masked rows
    # give NaN, which the generic non-contiguous test cannot compare: tests/kernel_families/test_attention.py covers
    # them)
    q, k, v = qkv(1, 2, 2, 40, 37, 96)
    m = _randn(gen, 1, 2, 40, 37)
    m[0, 0, 5:, :32] = float("-inf")
    cases.append((q, k, v, m.to(dtype), False, 0.08, None))
    # prefill, 9 queries over 32 keys (kv_len >= Sq), causal, 4 query heads over 2 KV heads, D=128
    cases.append((*qkv(1, 4, 2, 9, 32, 128), None, True, None, None))
    return cases


def fallback_examples(dtype: torch.dtype):
    gen = torch.Generator().manual_seed(1)
    q, k, v = (_randn(gen, 1, 2, 5, 32).to(dtype) for _ in range(3))
    q0 = _randn(gen, 1, 1, 2, 64).to(dtype)
    k0 = _randn(gen, 1, 1, 4, 64).to(dtype)
    return [(q, k, v, None, True, None, None), (q0, k0, k0.clone(), None, False, None, 0)]


ATTENTION = KernelFamily(
    name="attention",
    source="attention.metal",
    schema="(Tensor q, Tensor k, Tensor v, Tensor? mask, bool causal, float? scale=None, int? kv_len=None) -> Tensor",
    dtype_args=("q", "k", "v"),  # the mask is q's dtype or bool: validate checks it
    reference=reference,
    dtypes=FLOAT_DTYPES,
    outputs={"out": like("q")},
    plan=plan,
    validate=validate,
    validate_is_static=True,
    constraints=(head_dim_supported, has_keys, fits_uint32),
    description="Scaled dot-product attention (grouped KV heads, causal, additive or boolean mask, KV cache "
                "length); flash-attention prefill, two-pass split-KV decode for <= 8 queries",
    fusions="q k^T, scale, mask, causal mask, online softmax and P v in one kernel; the score matrix is never "
            "materialised",
    examples=examples,
    fallback_examples=fallback_examples,
    aligned_inputs=("q", "k", "v"),  # 16-byte vector loads of q (decode), k and v rows
)
FAMILIES = (ATTENTION,)
