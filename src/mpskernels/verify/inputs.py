"""Inputs for verification: the distributions a candidate must handle, copies to detect mutation, and the
memory tricks that keep a lazy kernel from passing on stale results."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch.utils._pytree import tree_flatten, tree_unflatten

# The problem's own get_inputs() first; then values it may not produce. A kernel that drops a clamp or a max
# subtraction because `rand` inputs never need it fails on "large" or "negative".
DISTRIBUTIONS = ("as-given", "normal", "uniform", "large", "negative", "tiny")

_MAKERS: dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = {
    "normal": lambda t, g: torch.randn(t.shape, generator=g, dtype=torch.float64),
    "uniform": lambda t, g: torch.rand(t.shape, generator=g, dtype=torch.float64),
    "large": lambda t, g: torch.randn(t.shape, generator=g, dtype=torch.float64) * 100.0,
    "negative": lambda t, g: -(torch.rand(t.shape, generator=g, dtype=torch.float64) + 0.05),
    "tiny": lambda t, g: torch.randn(t.shape, generator=g, dtype=torch.float64) * 1e-3,
}


def leaves(values: Any) -> list[Any]:
    return tree_flatten(values)[0]


def tensors(values: Any) -> list[torch.Tensor]:
    return [v for v in leaves(values) if isinstance(v, torch.Tensor)]


def redistribute(inputs: list[Any], distribution: str, seed: int) -> list[Any]:
    """`inputs` with every floating-point tensor redrawn from `distribution` (same shape, dtype and strides are
    not kept: a fresh contiguous tensor). Integer tensors (indices, lengths) and non-tensors stay as given."""
    if distribution == "as-given":
        return inputs
    make = _MAKERS.get(distribution)
    if make is None:
        raise ValueError(f"unknown input distribution {distribution!r}; choose from {', '.join(DISTRIBUTIONS)}")
    gen = torch.Generator().manual_seed(seed)
    flat, spec = tree_flatten(inputs)
    out = [make(v, gen).to(v.dtype).to(v.device) if isinstance(v, torch.Tensor) and v.is_floating_point() else v
           for v in flat]
    return tree_unflatten(out, spec)


def cast(values: Any, dtype: torch.dtype | None, device: torch.device | str | None = None) -> Any:
    """Floating-point tensors to `dtype` (None keeps theirs), every tensor to `device` (None keeps theirs)."""
    flat, spec = tree_flatten(values)
    out = []
    for v in flat:
        if isinstance(v, torch.Tensor):
            if dtype is not None and v.is_floating_point():
                v = v.to(dtype)
            if device is not None:
                v = v.to(device)
        out.append(v)
    return tree_unflatten(out, spec)


def clone(values: Any) -> Any:
    flat, spec = tree_flatten(values)
    return tree_unflatten([v.clone() if isinstance(v, torch.Tensor) else v for v in flat], spec)


def identical(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit-for-bit equal values (NaN equals NaN): an input compared with its copy from before the call."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.is_floating_point() or a.is_complex():
        return bool(((a == b) | (a.isnan() & b.isnan())).all())
    return bool(torch.equal(a, b))


def shares_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two tensors' storages overlap (a view, the same tensor, or a slice of the same buffer)."""
    if a.device != b.device or a.numel() == 0 or b.numel() == 0:
        return False
    sa, sb = a.untyped_storage(), b.untyped_storage()
    a0, b0 = sa.data_ptr(), sb.data_ptr()
    return a0 < b0 + sb.nbytes() and b0 < a0 + sa.nbytes()


def poison_free_memory(outputs: list[tuple[tuple[int, ...], torch.dtype]], device: torch.device | str) -> None:
    """Allocates NaN-filled blocks of the expected outputs' shapes and dtypes and frees them again, so an output
    buffer the allocator hands a candidate next holds NaN rather than an earlier run's correct result (the
    allocator-reuse cheat). Done before every candidate run; integer outputs get 0x7f bytes. Takes shapes, not
    tensors: converting the expected values here would itself leave a correct answer in freed memory."""
    blocks = []
    for shape, dtype in outputs:
        for _ in range(2):  # the allocator may keep more than one free block of a size
            block = torch.empty(shape, dtype=dtype, device=device)
            if block.is_floating_point():
                block.fill_(float("nan"))
            else:
                block.untyped_storage().fill_(0x7F)
            blocks.append(block)
    del blocks
