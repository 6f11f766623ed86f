"""In-place KV-cache append: write new keys and values into preallocated caches at a sequence offset.

    kv_cache_append(k_cache, v_cache, k, v, offset) -> ()

k_cache [B, H, S_max, Dk] and v_cache [B, H, S_max, Dv] receive k [B, H, S_new, Dk] and v [B, H, S_new, Dv] at
rows offset .. offset + S_new - 1 (a static cache, as HF's StaticCache.update does with index_copy_). Both caches
are written in place in one launch; nothing else in them changes.
"""

from __future__ import annotations

import torch

from .spec import DTYPE_NAMES, FLOAT_DTYPES, KernelFamily, LaunchPlan, Scalar, TensorMeta

CHUNK_BYTES = 16  # a thread copies one 16-byte chunk (4 floats or 8 halves / bfloats), as metal/kv_cache.metal
GROUP = 256


def reference(k_cache: torch.Tensor, v_cache: torch.Tensor, k: torch.Tensor, v: torch.Tensor, offset: int) -> None:
    new = k.shape[2]
    k_cache[:, :, offset : offset + new].copy_(k)
    v_cache[:, :, offset : offset + new].copy_(v)


def _byte_range(t: torch.Tensor) -> tuple[int, int]:
    """[first, last) byte addresses t's elements span (empty for an empty tensor)."""
    if t.numel() == 0:
        return 0, 0
    extent = 1 + sum((size - 1) * stride for size, stride in zip(t.shape, t.stride()))
    return t.data_ptr(), t.data_ptr() + extent * t.element_size()


def _share_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether a and b may have an element in common: their address ranges overlap within one storage (a range
    test, so two interleaved views that never touch the same element count as sharing). Disjoint ranges are
    disjoint memory; overlapping ones are confirmed by the storage (on MPS, data_ptr is a buffer handle plus an
    offset, so two buffers' ranges may seem to overlap)."""
    (a0, a1), (b0, b1) = _byte_range(a), _byte_range(b)
    if a0 == a1 or b0 == b1 or a1 <= b0 or b1 <= a0:
        return False
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def refuse_shared_memory(inputs, written: tuple[str, ...], read: tuple[str, ...]) -> None:
    """What an op writing `written` in place while reading `read` refuses about memory (every backend alike, checked
    on every call): a written tensor with internal overlap (two positions of one element), one that requires grad
    while grad mode is on (no autograd formula; PyTorch refuses in-place writes to leaves that require grad), two
    written tensors sharing memory (on a GPU the parts of one launch writing them would race), and a read tensor
    sharing memory with a written one (the launch would read what it has already overwritten). None entries of
    `read` (optional tensors left out) are skipped."""
    for name in written:
        t = inputs[name]
        if torch._debug_has_internal_overlap(t) == 1:
            raise ValueError(f"{name} has internal overlap (several positions share one element: an expanded or "
                             f"stride-0 view); pass a {name} with its own memory")
        if t.requires_grad and torch.is_grad_enabled():
            raise ValueError(f"{name} requires grad; the in-place write has no autograd formula (run it under "
                             f"torch.no_grad(), or pass a {name} that does not require grad)")
    for i, first in enumerate(written):
        for second in written[i + 1:]:
            if _share_memory(inputs[first], inputs[second]):
                raise ValueError(f"{first} and {second} share memory; pass separate tensors")
    for new in read:
        if inputs[new] is None:
            continue
        for target in written:
            if _share_memory(inputs[new], inputs[target]):
                raise ValueError(f"{new} shares memory with {target}; pass {new}.clone()")


def check_memory(inputs) -> None:
    """kv_cache_append's memory refusals: caches that share memory with each other or have internal overlap, new
    rows that share memory with a cache, a cache that requires grad while grad mode is on (refuse_shared_memory)."""
    refuse_shared_memory(inputs, ("k_cache", "v_cache"), ("k", "v"))


def check_shapes(inputs, offset_name: str = "offset") -> None:
    """Caches [B, H, S_max, Dk] / [B, H, S_max, Dv] and new rows [B, H, S_new, Dk] / [B, H, S_new, Dv] that fit at
    inputs[offset_name]."""
    k_cache, v_cache, k, v, offset = (inputs[n] for n in ("k_cache", "v_cache", "k", "v", offset_name))
    shapes = {n: tuple(inputs[n].shape) for n in ("k_cache", "v_cache", "k", "v")}
    if any(len(s) != 4 for s in shapes.values()):
        raise ValueError(f"caches and new entries must be [batch, heads, seq, head_dim], got {shapes}")
    if not (k_cache.shape[:2] == v_cache.shape[:2] == k.shape[:2] == v.shape[:2]):
        raise ValueError(f"batch and heads must agree, got {shapes}")
    if k_cache.shape[2] != v_cache.shape[2] or k.shape[2] != v.shape[2]:
        raise ValueError(f"k_cache and v_cache must have one length, k and v one length, got {shapes}")
    if k.shape[3] != k_cache.shape[3] or v.shape[3] != v_cache.shape[3]:
        raise ValueError(f"k and v must have their cache's head_dim, got {shapes}")
    if offset < 0 or offset + k.shape[2] > k_cache.shape[2]:
        raise ValueError(f"{offset_name} {offset} + {k.shape[2]} new entries must fit the cache length "
                         f"{k_cache.shape[2]}")


def validate(inputs) -> None:
    check_shapes(inputs)


def per_head_fits_uint32(inputs) -> str | None:
    """a cache holds 2^32 elements or more per (batch, head)"""
    for name in ("k_cache", "v_cache"):
        t = inputs[name]
        if t.dim() == 4 and t.shape[2] * t.shape[3] >= 2**32:
            return f"{name} has {t.shape[2] * t.shape[3]} elements per head, more than 32-bit indexing covers"
    return None


def plan(k_cache: TensorMeta, v_cache: TensorMeta, k: TensorMeta, v: TensorMeta, offset: int) -> LaunchPlan:
    batch, heads, cache_len, k_dim = k_cache.shape
    new, v_dim = k.shape[2], v.shape[3]
    k_chunk, v_chunk = new * k_dim, new * v_dim
    return LaunchPlan(
        kernel=f"kv_cache_append_{DTYPE_NAMES[k.dtype]}",
        buffers=("k_cache", "v_cache", "k", "v",
                 Scalar(k_chunk, "uint"), Scalar(v_chunk, "uint"),
                 Scalar(cache_len * k_dim, "uint"), Scalar(cache_len * v_dim, "uint"),
                 Scalar(offset * k_dim, "uint"), Scalar(offset * v_dim, "uint")),
        threads=(-(-max(k_chunk, v_chunk) // (CHUNK_BYTES // k.dtype.itemsize)), batch * heads, 2),
        group_size=(GROUP, 1, 1),
    )


def examples(dtype: torch.dtype):
    gen = torch.Generator().manual_seed(0)

    def rand(*shape):
        return torch.randn(*shape, generator=gen).to(dtype)

    return [
        # Prefill of 33 tokens into a 40-long cache with grouped heads; v has its own head size.
        (rand(2, 3, 40, 32), rand(2, 3, 40, 31), rand(2, 3, 33, 32), rand(2, 3, 33, 31), 0),
        # One decode token at the last row.
        (rand(1, 2, 17, 64), rand(1, 2, 17, 64), rand(1, 2, 1, 64), rand(1, 2, 1, 64), 16),
        # A chunk in the middle, odd head size (rows not aligned to 16 bytes), more elements than one group step.
        (rand(3, 1, 50, 37), rand(3, 1, 50, 37), rand(3, 1, 31, 37), rand(3, 1, 31, 37), 7),
    ]


KV_CACHE_APPEND = KernelFamily(
    name="kv_cache_append",
    source="kv_cache.metal",
    schema="(Tensor(a!) k_cache, Tensor(b!) v_cache, Tensor k, Tensor v, int offset) -> ()",
    reference=reference,
    dtypes=FLOAT_DTYPES,
    outputs={},
    plan=plan,
    validate=validate,
    validate_is_static=True,
    check_values=check_memory,
    constraints=(per_head_fits_uint32,),
    description="in-place append of new keys and values into [B, H, S_max, D] caches at a sequence offset",
    fusions="k and v written in one launch",
    mutates=("k_cache", "v_cache"),
    examples=examples,
)
FAMILIES = (KV_CACHE_APPEND,)
