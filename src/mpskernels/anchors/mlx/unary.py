"""MLX's contiguous unary kernels (unary.h): the building blocks of its eager activation chains.

Host logic after mlx/backend/metal/unary.cpp (unary_op_gpu_inplace, contiguous branch) and
get_work_per_thread (mlx/backend/metal/utils.h): below 2^16 elements each thread computes one element ("v"); from
2^16 on, 8 bytes' worth (2 floats, 4 halves: "vn"), the last thread guarding the tail; threadgroups of the
pipeline's 1024 threads, or fewer when the whole grid is smaller; past UINT32_MAX elements MLX switches to "v2"
(64-bit sizes, a 2-D grid), which these ops do not instantiate.
"""

from __future__ import annotations

import torch

from ..op import AnchorOp, Prepared, register
from .launch import FLOATS, TYPE_NAME, UINT32_MAX, check_dtype, launcher, row_contiguous

UNARY_OPS = ("Sigmoid", "Erf", "Exp")
WORK_PER_THREAD_THRESHOLD = 1 << 16
MAX_THREADS = 1024


def work_per_thread(dtype: torch.dtype, size: int) -> int:
    """get_work_per_thread(dtype, size): 8 bytes per thread for large arrays, one element for small ones."""
    item = torch.empty((), dtype=dtype).element_size()
    return 1 if size < WORK_PER_THREAD_THRESHOLD else max(1, 8 // item)


def contiguous_geometry(op: str, dtype: torch.dtype, size: int) -> tuple[int, int, int]:
    """(work per thread, grid threads, threadgroup size) of MLX's contiguous elementwise launches."""
    if size > UINT32_MAX:
        raise ValueError(f"{op}: {size} elements need MLX's 64-bit 'v2' kernels, which these ops do not instantiate")
    wpt = work_per_thread(dtype, size)
    threads = -(-size // wpt)
    return wpt, threads, min(MAX_THREADS, threads)


def unary_launch(backend: str, op: str, x: torch.Tensor, out: torch.Tensor) -> Prepared:
    """One MLX unary kernel over contiguous x into out (same shape and dtype)."""
    if op not in UNARY_OPS:
        raise ValueError(f"unary op {op!r} is not instantiated; have {UNARY_OPS}")
    check_dtype(f"mlx.{op}", x, out)
    row_contiguous(f"mlx.{op}", x, out)
    size = x.numel()
    if size == 0:
        return Prepared(lambda: None, out, ())
    wpt, threads, group = contiguous_geometry(f"mlx.{op}", x.dtype, size)
    tname = TYPE_NAME[x.dtype]
    name = f"{'vn' if wpt > 1 else 'v'}_{op}{tname}{tname}"
    launch = launcher(backend, "mlx_unary", name, x, out, size, threads=(threads,), group_size=(group,))
    return Prepared(launch, out, (name,))


def _unary_op(op: str) -> AnchorOp:
    def prepare(backend: str, x: torch.Tensor) -> Prepared:
        return unary_launch(backend, op, x, torch.empty_like(x))

    return register(AnchorOp(
        name=f"mlx.{op.lower()}", anchor="mlx", family="elementwise", dtypes=FLOATS, prepare_fn=prepare,
        doc=f"MLX's {op} (unary_ops.h) through unary.h's unary_v, launched as mlx/backend/metal/unary.cpp "
            f"unary_op_gpu_inplace does for a contiguous input ('v' below 2^16 elements, 'vn' from there).",
    ))


SIGMOID = _unary_op("Sigmoid")
ERF = _unary_op("Erf")
EXP = _unary_op("Exp")
