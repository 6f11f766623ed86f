"""What every MLX anchor op shares: one launch path for both backends, MLX's dtype names, and the small
host-side arrays (shapes, strides, parameter structs) MLX's host code binds with `set_bytes`/`set_vector_bytes`."""

from __future__ import annotations

import struct
from typing import Any, Callable, Mapping, Sequence

import torch

from ..library import load

# MLX's `type_to_name` (kernel names of softmax, unary, binary, gemv, steel attention) and `get_type_string`
# (sdpa_vector, quantized): the two spellings its host code builds kernel names from.
TYPE_NAME = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}
TYPE_STRING = {torch.float32: "float", torch.float16: "float16_t", torch.bfloat16: "bfloat16_t"}
FLOATS = (torch.float32, torch.float16, torch.bfloat16)

UINT32_MAX = 2**32 - 1
INT32_MAX = 2**31 - 1


def launcher(backend: str, library: str, kernel: str, *args: Any, threads: Sequence[int], group_size: Sequence[int],
             constants: Mapping[str, Any] | None = None,
             threadgroup_memory: Mapping[int, int] | None = None) -> Callable[[], None]:
    """A function that launches `kernel` of anchors/metal/<library>.metal once with these arguments.

    `threads` is the whole grid in threads (Metal's dispatchThreads; a host that calls dispatchThreadgroups passes
    groups x group size). On the emulator every call dispatches afresh; on the CUDA lane the library's `prepare`
    binds and plans once and returns a launch with no copies and no synchronisation (the lane times it)."""
    lib = load(library, backend)
    options = dict(threads=tuple(threads), group_size=tuple(group_size), constants=dict(constants or {}),
                   threadgroup_memory=dict(threadgroup_memory or {}))
    if backend == "cuda" and hasattr(lib, "prepare"):
        return lib.prepare(kernel, *args, **options)
    return lambda: lib.dispatch(kernel, *args, **options)


def sequence(*launches: Callable[[], None]) -> Callable[[], None]:
    """One launch that runs several in order (a host function that encodes more than one dispatch)."""

    def run() -> None:
        for launch in launches:
            launch()

    return run


def grid(groups: Sequence[int], group_size: Sequence[int]) -> tuple[int, ...]:
    """dispatchThreadgroups(groups, group_size) as a thread count per dimension."""
    return tuple(g * s for g, s in zip(groups, group_size))


def int32s(values: Sequence[int], like: torch.Tensor) -> torch.Tensor:
    """A `constant int*` array (set_vector_bytes of a Shape), on the inputs' device."""
    return torch.tensor(list(values) or [0], dtype=torch.int32, device=like.device)


def int64s(values: Sequence[int], like: torch.Tensor) -> torch.Tensor:
    """A `constant int64_t*` array (set_vector_bytes of Strides), on the inputs' device."""
    return torch.tensor(list(values) or [0], dtype=torch.int64, device=like.device)


def packed(fmt: str, *values: Any) -> bytes:
    """The bytes of a parameter struct bound with set_bytes, laid out as Metal lays it out (little endian;
    `fmt` spells the fields and their padding in `struct` notation)."""
    return struct.pack("<" + fmt, *values)


def span(t: torch.Tensor) -> torch.Tensor:
    """The contiguous 1-D run of memory a strided tensor reads, from its first element (what MLX binds: the
    array's buffer at its offset; the kernel gets the strides separately)."""
    if t.numel() == 0:
        return t.reshape(0)
    if any(s < 0 for s in t.stride()):
        raise ValueError("negative strides: MLX would copy this array first")
    extent = 1 + sum((n - 1) * s for n, s in zip(t.shape, t.stride()))
    return torch.as_strided(t, (extent,), (1,), t.storage_offset())


def check_dtype(op: str, *tensors: torch.Tensor) -> torch.dtype:
    dtype = tensors[0].dtype
    for t in tensors:
        if t.dtype != dtype:
            raise TypeError(f"{op}: every input must have one dtype, got {dtype} and {t.dtype}")
    if dtype not in TYPE_NAME:
        raise TypeError(f"{op}: MLX instantiates this kernel for float32, float16 and bfloat16, not {dtype}")
    return dtype


def row_contiguous(op: str, *tensors: torch.Tensor) -> None:
    """MLX's host copies inputs that are not row-contiguous before it dispatches (contiguous_copy_gpu); the
    anchor ops take them contiguous instead, so a copy never hides inside a timed launch."""
    for t in tensors:
        if not t.is_contiguous():
            raise ValueError(f"{op}: inputs must be contiguous (MLX's host would copy this one first)")
