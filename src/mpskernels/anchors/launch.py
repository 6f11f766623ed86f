"""What every anchor op's host logic needs to launch a kernel the way Metal's host code does, on either backend.

Metal hosts dispatch whole threadgroups (`dispatchThreadgroups:grid threadsPerThreadgroup:group`); our libraries take
the total thread count (dispatchThreads), so `threadgroups` converts. Small by-value arguments (`setBytes` of a
`uint3`, a parameter struct, a shape or strides array) travel as raw bytes or small tensors laid out as Metal lays
them out. On the emulator every launch dispatches afresh; on the CUDA lane the library's `prepare` binds and plans
once and returns a launch with no copies and no synchronisation, which the lane times.
"""

from __future__ import annotations

import struct
from typing import Any, Callable, Mapping, Sequence

import torch

from .library import BACKENDS, load


def threadgroups(grid: Sequence[int], group: Sequence[int]) -> dict[str, tuple[int, ...]]:
    """The `threads=` and `group_size=` of a dispatch of `grid` threadgroups of `group` threads each."""
    grid, group = tuple(grid), tuple(group)
    if len(grid) != len(group):
        raise ValueError(f"grid {grid} and threadgroup {group} must have as many dimensions")
    return {"threads": tuple(n * g for n, g in zip(grid, group)), "group_size": group}


def launcher(backend: str, library: str, kernel: str, *args: Any, threads: Sequence[int], group_size: Sequence[int],
             constants: Mapping[str, Any] | None = None,
             threadgroup_memory: Mapping[int, int] | None = None) -> Callable[[], None]:
    """A function that launches `kernel` of anchors/metal/<library>.metal once with these arguments."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    lib = load(library, backend)
    options = dict(threads=tuple(threads), group_size=tuple(group_size), constants=dict(constants or {}),
                   threadgroup_memory=dict(threadgroup_memory or {}))
    if backend == "cuda" and hasattr(lib, "prepare"):
        return lib.prepare(kernel, *args, **options)
    return lambda: lib.dispatch(kernel, *args, **options)


def in_order(*launches: Callable[[], None]) -> Callable[[], None]:
    """One launch that runs several in order (a host function that encodes more than one dispatch)."""

    def run() -> None:
        for launch in launches:
            launch()

    return run


def uint_vector(*values: int) -> bytes:
    """A Metal `uintN` (N = 2, 3 or 4) as `setBytes` binds it. A `uint3` is 16 bytes in Metal (it is aligned like a
    uint4), so three values get a zero fourth lane: a kernel reading `constant uint3&` reads 16 bytes."""
    if not 2 <= len(values) <= 4:
        raise ValueError(f"a Metal uint vector has 2 to 4 components, got {len(values)}")
    lanes = list(values) + [0] * (len(values) == 3)
    for v in lanes:
        if not 0 <= int(v) < 2**32:
            raise ValueError(f"{v} does not fit a 32-bit uint (the host narrows strides to uint32_t)")
    return struct.pack(f"<{len(lanes)}I", *(int(v) for v in lanes))


def packed(fmt: str, *values: Any) -> bytes:
    """The bytes of a parameter struct bound with set_bytes, laid out as Metal lays it out (little endian;
    `fmt` spells the fields and their padding in `struct` notation)."""
    return struct.pack("<" + fmt, *values)


def int32s(values: Sequence[int], like: torch.Tensor) -> torch.Tensor:
    """A `constant int*` array (set_vector_bytes of a shape), on the inputs' device."""
    return torch.tensor(list(values) or [0], dtype=torch.int32, device=like.device)


def int64s(values: Sequence[int], like: torch.Tensor) -> torch.Tensor:
    """A `constant int64_t*` array (set_vector_bytes of strides), on the inputs' device."""
    return torch.tensor(list(values) or [0], dtype=torch.int64, device=like.device)


def span(t: torch.Tensor) -> torch.Tensor:
    """The memory a strided view spans, from its first element, as a contiguous 1-D tensor over the same storage.
    Metal hosts bind a buffer at the array's offset and pass the strides separately, so a view (a KV-cache slice,
    a broadcast mask with stride 0) is bound where it lies, without a copy, on both backends."""
    if t.numel() == 0:
        return t.reshape(0)
    if t.is_contiguous():
        return t
    if any(s < 0 for s in t.stride()):
        raise ValueError("negative strides: the anchors' hosts copy such an array first")
    extent = 1 + sum((n - 1) * s for n, s in zip(t.shape, t.stride()))
    return torch.as_strided(t, (extent,), (1,), t.storage_offset())
