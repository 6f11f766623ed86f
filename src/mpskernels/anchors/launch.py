"""What every anchor op's host logic needs to launch a kernel the way Metal's host code does, on either backend.

Metal hosts dispatch whole threadgroups (`dispatchThreadgroups:grid threadsPerThreadgroup:group`); our libraries take
the total thread count (dispatchThreads), so `threadgroups` converts. Small by-value arguments (`setBytes` of a
`uint3`, a parameter struct) travel as raw bytes laid out as Metal lays them out.
"""

from __future__ import annotations

import struct
from typing import Any, Callable, Sequence

import torch

from .library import BACKENDS


def threadgroups(grid: Sequence[int], group: Sequence[int]) -> dict[str, tuple[int, ...]]:
    """The `threads=` and `group_size=` of a dispatch of `grid` threadgroups of `group` threads each."""
    grid, group = tuple(grid), tuple(group)
    if len(grid) != len(group):
        raise ValueError(f"grid {grid} and threadgroup {group} must have as many dimensions")
    return {"threads": tuple(n * g for n, g in zip(grid, group)), "group_size": group}


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


def buffer_of(t: torch.Tensor) -> torch.Tensor:
    """The memory a strided view spans, as a contiguous 1-D tensor over the same storage. Metal binds a buffer and
    the kernel indexes it with the strides the host passes, so a view (a KV-cache slice, a broadcast mask with
    stride 0) is bound where it lies, without a copy, on both backends. (Torch strides are never negative.)"""
    if t.is_contiguous():
        return t
    extent = 1 + sum((n - 1) * s for n, s in zip(t.shape, t.stride())) if t.numel() else 0
    return t.as_strided((extent,), (1,))


def launcher(lib: Any, backend: str, kernel: str, *args: Any, threads: Sequence[int],
             group_size: Sequence[int]) -> Callable[[], None]:
    """A callable that launches `kernel` with `args`: on the emulator each call dispatches (and finishes); on the
    CUDA lane the library prepares the launch once (arguments bound, no copies) and each call only enqueues it."""
    if backend == "emulator":
        return lambda: lib.dispatch(kernel, *args, threads=threads, group_size=group_size)
    if backend == "cuda":
        return lib.prepare(kernel, *args, threads=threads, group_size=group_size)
    raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")


def in_order(*launches: Callable[[], None]) -> Callable[[], None]:
    """One launch that runs several in order (a two-pass kernel)."""
    def launch() -> None:
        for one in launches:
            one()
    return launch
