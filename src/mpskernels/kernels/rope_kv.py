"""Rotary embedding of q and k with the KV-cache append of the rotated k and of v, in one launch (issue 18).

    rope_kv_append(q_out, k_out, k_cache, v_cache, q, k, v, cos, sin, position_ids, offset, interleaved,
                   cache_offset) -> ()

A decoder layer's step without it is two launches: rope (q, k -> rotated copies) then kv_cache_append (the rotated
k and v into the caches). Here, in place and in one launch:

- (q_rot, k_rot) = rope(q, k, cos, sin, position_ids, offset, interleaved), exactly as the rope op defines it
  (rope.py: table forms, partial rotary, grouped heads, both layouts, position ids or offset, fp32 math rounded to
  the dtype);
- q_out <- q_rot and k_out <- k_rot (preallocated, shaped like q and k: a caller may hand k_out on before it reads
  the cache);
- k_cache[:, :, cache_offset : cache_offset + S] <- k_rot and v_cache[...] <- v, as kv_cache_append does (its
  shape rules and memory refusals, kv_cache.py).

The kernel is rope's (metal/rope.metal: the threads that rotate a k chunk also store it to its cache row) with
slices of the grid that copy v, as kv_cache.metal does.
"""

from __future__ import annotations

import torch

from . import kv_cache, rope
from .spec import FLOAT_DTYPES, KernelFamily, LaunchPlan, Scalar, TensorMeta, fits_uint32

CHUNK_BYTES = 16  # a v slice thread copies one 16-byte chunk, as kv_cache.metal
WRITTEN = ("q_out", "k_out", "k_cache", "v_cache")  # what the op writes in place (schema order)
READ = ("q", "k", "v", "cos", "sin", "position_ids")


def reference(q_out: torch.Tensor, k_out: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
              q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
              position_ids: torch.Tensor | None, offset: int, interleaved: bool, cache_offset: int) -> None:
    q_rot, k_rot = rope.reference(q, k, cos, sin, position_ids, offset, interleaved)
    q_out.copy_(q_rot)
    k_out.copy_(k_rot)
    kv_cache.reference(k_cache, v_cache, k_rot, v, cache_offset)


# ---- checks ----


def validate(inputs) -> None:
    rope.validate(inputs)
    kv_cache.check_shapes(inputs, "cache_offset")
    for out, source in (("q_out", "q"), ("k_out", "k")):
        if inputs[out].shape != inputs[source].shape:
            raise ValueError(f"{out} must have {source}'s shape {tuple(inputs[source].shape)}, got "
                             f"{tuple(inputs[out].shape)}")


def check_values(inputs) -> None:
    """On every call: position ids in the tables' rows (rope's check), and kv_cache_append's memory refusals over
    every tensor the op writes and every one it reads."""
    rope.check_position_values(inputs)
    kv_cache.refuse_shared_memory(inputs, WRITTEN, READ)


# ---- launch ----


def plan(q_out: TensorMeta, k_out: TensorMeta, k_cache: TensorMeta, v_cache: TensorMeta, q: TensorMeta,
         k: TensorMeta, v: TensorMeta, cos: TensorMeta, sin: TensorMeta, position_ids: TensorMeta | None,
         offset: int, interleaved: bool, cache_offset: int) -> LaunchPlan:
    """rope's grid (rope.rope_grid), then enough z slices of it to give each 16-byte chunk of v's new rows one
    thread: per (batch, head), seq * v_dim elements, contiguous in v and in v_cache."""
    grid = rope.rope_grid(q, k, cos, position_ids, offset, interleaved)
    batch, k_heads, seq, _ = k.shape
    v_dim, cache_len = v.shape[3], k_cache.shape[2]
    n = CHUNK_BYTES // q.dtype.itemsize
    v_chunks = batch * k_heads * -(-(seq * v_dim) // n)
    per_slice = grid.units * grid.head_blocks
    v_slices = -(-v_chunks // per_slice) if v_chunks else 0
    return LaunchPlan(
        kernel=f"rope_kv_append{grid.variant}",
        buffers=grid.buffers + (
            "v", "k_cache", "v_cache",
            Scalar(batch, "uint"), Scalar(v_dim, "uint"), Scalar(cache_len, "uint"), Scalar(cache_offset, "uint"),
        ) + (() if position_ids is None else ("position_ids",)),
        threads=(grid.units, grid.head_blocks, grid.tokens + v_slices),
        group_size=grid.group_size,
        constants=grid.constants,
    )


# ---- examples ----


def examples(dtype: torch.dtype):
    gen = torch.Generator().manual_seed(0)

    def rand(*shape):
        return torch.randn(*shape, generator=gen).to(dtype)

    def case(batch, q_heads, k_heads, seq, head_dim, v_dim, cache_len, cache_offset, cos, sin, ids, offset,
             interleaved):
        q, k, v = rand(batch, q_heads, seq, head_dim), rand(batch, k_heads, seq, head_dim), \
            rand(batch, k_heads, seq, v_dim)
        nan = float("nan")  # outputs start as poison: a kernel that skips elements cannot pass
        return (torch.full_like(q, nan), torch.full_like(k, nan), rand(batch, k_heads, cache_len, head_dim),
                rand(batch, k_heads, cache_len, v_dim), q, k, v, cos, sin, ids, offset, interleaved, cache_offset)

    out = []
    # Decode: one token at offset 33 of a [40, D] table, grouped heads 4 / 2, into the cache's last row.
    out.append(case(1, 4, 2, 1, 64, 64, 34, 33, *rope.tables(40, 64, False, dtype), None, 33, False))
    # A prefill chunk with HF's per-token tables [B, S, D]; v with its own head size; several v slices of the grid.
    out.append(case(2, 4, 2, 5, 32, 24, 12, 3, *rope.tables(5, 32, False, dtype, batch=2), None, 0, False))
    # GPT-J interleaved, partial rotary (62 of 70), 7 tokens from offset 2, at an odd cache row (unaligned rows).
    out.append(case(1, 2, 1, 7, 70, 70, 16, 9, *rope.tables(40, 62, True, dtype), None, 2, True))
    # GPT-NeoX partial rotary (16 of 24) with int64 position ids [B, S] into a table.
    ids = torch.randint(0, 50, (2, 3), generator=gen)
    out.append(case(2, 3, 3, 3, 24, 24, 8, 5, *rope.tables(50, 16, False, dtype), ids, 0, False))
    # int32 ids shared by the batch, interleaved, one pair, odd head sizes (D = 5, Dv = 3).
    ids = torch.randint(0, 64, (4,), generator=gen, dtype=torch.int32)
    out.append(case(3, 1, 1, 4, 5, 3, 6, 2, *rope.tables(64, 2, True, dtype), ids, 0, True))
    # float32 tables with a half-precision q and k; [1, 1, P, R] tables (HF's unsqueezed layout).
    cos, sin = rope.tables(16, 32, False, torch.float32)
    out.append(case(1, 2, 2, 8, 32, 32, 16, 8, cos[None, None], sin[None, None], None, 8, False))
    return out


def fallback_examples(dtype: torch.dtype):
    gen = torch.Generator().manual_seed(1)

    def rand(*shape):
        return torch.randn(*shape, generator=gen).to(dtype)

    q, k, v = rand(1, 2, 3, 8), rand(1, 1, 3, 8), rand(1, 1, 3, 8)
    other = torch.bfloat16 if dtype == torch.float16 else torch.float16
    ids = torch.tensor([4, 0, 2], dtype=torch.int16)

    def case(cos, sin, ids, offset, interleaved):
        return (torch.empty_like(q), torch.empty_like(k), rand(1, 1, 6, 8), rand(1, 1, 6, 8), q, k, v, cos, sin,
                ids, offset, interleaved, 2)

    return [case(*rope.tables(8, 8, False, other), None, 1, False),
            case(*rope.tables(8, 8, True, dtype), ids, 0, True)]


ROPE_KV_APPEND = KernelFamily(
    name="rope_kv_append",
    source="rope.metal",
    schema="(Tensor(a!) q_out, Tensor(b!) k_out, Tensor(c!) k_cache, Tensor(d!) v_cache, Tensor q, Tensor k, "
           "Tensor v, Tensor cos, Tensor sin, Tensor? position_ids, int offset, bool interleaved, "
           "int cache_offset) -> ()",
    reference=reference,
    dtypes=FLOAT_DTYPES,
    outputs={},
    plan=plan,
    validate=validate,
    validate_is_static=True,
    check_values=check_values,
    constraints=(rope.supported_table_dtype, rope.supported_position_dtype, fits_uint32("q"), fits_uint32("k"),
                 fits_uint32("v"), fits_uint32("cos"), kv_cache.per_head_fits_uint32),
    description="rotary position embedding of q and k into q_out and k_out, with the rotated k and v appended to "
                "[B, H, S_max, D] caches at a sequence offset (in place)",
    fusions="rope (table lookup, rotation, pass-through) and kv_cache_append of the rotated k and of v in one "
            "launch: k read once, written to k_out and its cache row by the same thread",
    mutates=WRITTEN,
    dtype_args=("q_out", "k_out", "k_cache", "v_cache", "q", "k", "v"),
    examples=examples,
    fallback_examples=fallback_examples,
)
FAMILIES = (ROPE_KV_APPEND,)
