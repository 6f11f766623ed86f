"""MLX's softmax, and its log_softmax chain (logsumexp, then a broadcasting subtract).

Host logic after mlx/backend/metal/softmax.cpp (Softmax::eval_gpu) and logsumexp.cpp (LogSumExp::eval_gpu):
rows up to 4096 long get the "block" kernel with one threadgroup per row, just enough SIMD groups for 4 elements
per thread; longer rows get the "looped" kernel with the largest threadgroup (1024 threads) striding the row.
"""

from __future__ import annotations

import torch

from ..op import AnchorOp, Prepared, register
from .binary import binary_launch
from .launch import FLOATS, TYPE_NAME, check_dtype, launcher, row_contiguous

LOOPED_LIMIT = 4096  # SOFTMAX_LOOPED_LIMIT and LOGSUMEXP_LOOPED_LIMIT
N_READS = 4  # SOFTMAX_N_READS (kernels/defines.h); logsumexp reads 4 as well
SIMD_SIZE = 32
MAX_THREADS = 1024  # maxTotalThreadsPerThreadgroup of these pipelines on Apple GPUs


def row_geometry(axis_size: int, rows: int) -> tuple[str, int, int]:
    """(variant, grid threads, threadgroup size) for `rows` rows of `axis_size`: MLX's choice for both kernels."""
    if axis_size > LOOPED_LIMIT:
        return "looped", rows * MAX_THREADS, MAX_THREADS
    per_row = -(-axis_size // N_READS)
    group = SIMD_SIZE * -(-per_row // SIMD_SIZE)
    return "block", rows * group, group


def softmax_kernel(dtype: torch.dtype, axis_size: int, precise: bool) -> str:
    """MLX's kernel name; `precise` (mx.softmax(..., precise=True)) accumulates half and bfloat in float."""
    variant, _, _ = row_geometry(axis_size, 1)
    return f"{variant}_softmax_{'precise_' if precise and dtype != torch.float32 else ''}{TYPE_NAME[dtype]}"


def _rows(op: str, x: torch.Tensor) -> tuple[int, int]:
    check_dtype(op, x)
    row_contiguous(op, x)
    if x.dim() == 0 or x.shape[-1] == 0:
        raise ValueError(f"{op}: needs a non-empty last axis")
    return x.shape[-1], x.numel() // x.shape[-1]


def prepare_softmax(backend: str, x: torch.Tensor, *, precise: bool = False) -> Prepared:
    axis_size, rows = _rows("mlx.softmax", x)
    _, threads, group = row_geometry(axis_size, rows)
    name = softmax_kernel(x.dtype, axis_size, precise)
    out = torch.empty_like(x)
    launch = launcher(backend, "mlx_softmax", name, x, out, axis_size, threads=(threads,), group_size=(group,))
    return Prepared(launch, out, (name,))


def prepare_logsumexp(backend: str, x: torch.Tensor) -> Prepared:
    """logsumexp over the last axis, keepdims (the shape MLX's log_softmax subtracts)."""
    axis_size, rows = _rows("mlx.logsumexp", x)
    variant, threads, group = row_geometry(axis_size, rows)
    name = f"{variant}_logsumexp_{TYPE_NAME[x.dtype]}"
    out = torch.empty(*x.shape[:-1], 1, dtype=x.dtype, device=x.device)
    launch = launcher(backend, "mlx_logsumexp", name, x, out, axis_size, threads=(threads,), group_size=(group,))
    return Prepared(launch, out, (name,))


def prepare_log_softmax(backend: str, x: torch.Tensor) -> Prepared:
    """mlx.nn.log_softmax eagerly: logsumexp(x, keepdims) and then x - lse, a General (broadcast) subtract."""
    lse = prepare_logsumexp(backend, x)
    out = torch.empty_like(x)
    sub = binary_launch(backend, "Subtract", x, lse.out.expand_as(x), out)

    def launch() -> None:
        lse.launch()
        sub.launch()

    return Prepared(launch, out, lse.kernels + sub.kernels)


SOFTMAX = register(AnchorOp(
    name="mlx.softmax", anchor="mlx", family="softmax", dtypes=FLOATS, prepare_fn=prepare_softmax,
    doc="MLX's softmax over the last axis (softmax.h: softmax_single_row up to 4096, softmax_looped above), "
        "launched as mlx/backend/metal/softmax.cpp Softmax::eval_gpu does; precise=True accumulates half/bfloat "
        "in float (mx.softmax(precise=True)), the default (False) accumulates in the input type as MLX does.",
))

LOGSUMEXP = register(AnchorOp(
    name="mlx.logsumexp", anchor="mlx", family="log_softmax", dtypes=FLOATS, prepare_fn=prepare_logsumexp,
    doc="MLX's logsumexp over the last axis, keepdims (logsumexp.h: logsumexp / logsumexp_looped), launched as "
        "mlx/backend/metal/logsumexp.cpp LogSumExp::eval_gpu does. The first half of MLX's log_softmax.",
))

LOG_SOFTMAX = register(AnchorOp(
    name="mlx.log_softmax", anchor="mlx", family="log_softmax", dtypes=FLOATS, prepare_fn=prepare_log_softmax,
    doc="MLX has no log-softmax kernel: mlx.nn.log_softmax is x - logsumexp(x, keepdims=True), two kernels run "
        "eagerly: logsumexp (logsumexp.cpp) and the broadcasting Subtract (binary.cpp, General, g2).",
))
