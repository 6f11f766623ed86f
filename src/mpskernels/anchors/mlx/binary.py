"""MLX's binary kernels (binary.h): Add, Subtract, Multiply, Divide.

Host logic after mlx/backend/metal/binary.cpp (binary_op_gpu_inplace, get_kernel_name) and
mlx/backend/common/binary.h (get_binary_op_type): a one-element operand with a contiguous other is
ScalarVector / VectorScalar ("sv"/"vs"), two contiguous operands of one layout VectorVector ("vv"); these run over
the flat data with MLX's work-per-thread rule ("…n" from 2^16 elements). Anything else (broadcasts) is General:
dimensions that are contiguous for every operand are collapsed (collapse_contiguous_dims), and up to three
collapsed dimensions run "g1"/"g2"/"g3" on a 3-D grid whose threadgroup get_block_dims shapes.
"""

from __future__ import annotations

import torch

from ..op import AnchorOp, Prepared, register
from .launch import FLOATS, INT32_MAX, TYPE_NAME, check_dtype, int64s, launcher, span
from .unary import contiguous_geometry

BINARY_OPS = ("Add", "Subtract", "Multiply", "Divide")


def is_scalar(t: torch.Tensor) -> bool:
    """MLX's data_size() == 1: one element, possibly broadcast to any shape (all strides 0)."""
    return t.numel() == 1 or all(s == 0 for s, n in zip(t.stride(), t.shape) if n > 1)


def op_type(a: torch.Tensor, b: torch.Tensor) -> str:
    """get_binary_op_type, with torch's contiguity for MLX's row_contiguous."""
    if is_scalar(a) and is_scalar(b):
        return "ss"
    if is_scalar(a) and b.is_contiguous():
        return "sv"
    if is_scalar(b) and a.is_contiguous():
        return "vs"
    if a.is_contiguous() and b.is_contiguous():
        return "vv"
    return "g"


def collapse_contiguous_dims(shape: list[int], strides: list[list[int]]) -> tuple[list[int], list[list[int]]]:
    """Merges neighbouring dimensions that are contiguous for every stride set, drops size-1 dimensions."""
    groups: list[list[int]] = [[0]] if shape and shape[0] != 1 else [[]]
    for i in range(1, len(shape)):
        if any(st[i] * shape[i] != st[i - 1] for st in strides):
            groups.append([])
        if shape[i] != 1:
            groups[-1].append(i)
    groups = [g for g in groups if g]
    if not groups:
        return [1], [[0] for _ in strides]
    out_shape = []
    for g in groups:
        n = 1
        for i in g:
            n *= shape[i]
        out_shape.append(n)
    return out_shape, [[st[g[-1]] for g in groups] for st in strides]


def block_dims(dim0: int, dim1: int, dim2: int, pow2: int = 10) -> tuple[int, int, int]:
    """get_block_dims_common: powers of two grown in turn along x, y, z until 2^pow2 threads or the grid's size."""
    pows = [0, 0, 0]
    dims = (dim0, dim1, dim2)
    total = 0
    while True:
        before = total
        for axis in range(3):
            if dims[axis] >= 1 << (pows[axis] + 1):
                pows[axis] += 1
                total += 1
            if total == 10:
                return tuple(1 << p for p in pows)  # type: ignore[return-value]
        if total == before or total == pow2:
            return tuple(1 << p for p in pows)  # type: ignore[return-value]


def binary_launch(backend: str, op: str, a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> Prepared:
    """One MLX binary kernel: out = op(a, b), a and b already broadcast to out's (contiguous) shape."""
    if op not in BINARY_OPS:
        raise ValueError(f"binary op {op!r} is not instantiated; have {BINARY_OPS}")
    check_dtype(f"mlx.{op}", a, b, out)
    if not out.is_contiguous() or a.shape != out.shape or b.shape != out.shape:
        raise ValueError(f"mlx.{op}: a and b must be broadcast to out's shape, and out contiguous")
    if out.numel() == 0:
        return Prepared(lambda: None, out, ())
    kind = op_type(a, b)
    tname = TYPE_NAME[out.dtype]
    if kind == "ss":
        raise ValueError(f"mlx.{op}: two one-element operands run MLX's 'ss' kernel, not instantiated here")
    if kind != "g":
        wpt, threads, group = contiguous_geometry(f"mlx.{op}", out.dtype, out.numel())
        name = f"{kind}{'n' if wpt > 1 else ''}_{op}{tname}"
        args = (span(a)[:1] if kind == "sv" else a, span(b)[:1] if kind == "vs" else b, out, out.numel())
        launch = launcher(backend, "mlx_binary", name, *args, threads=(threads,), group_size=(group,))
        return Prepared(launch, out, (name,))
    return _general(backend, op, a, b, out)


def _general(backend: str, op: str, a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> Prepared:
    shape, (sa, sb, _) = collapse_contiguous_dims(list(out.shape), [list(a.stride()), list(b.stride()),
                                                                    list(out.stride())])
    ndim = len(shape)
    if ndim > 3:
        raise ValueError(f"mlx.{op}: {ndim} collapsed dimensions run MLX's 'gn2' kernel, not instantiated here")
    if max(span(a).numel(), span(b).numel(), out.numel()) > INT32_MAX:
        raise ValueError(f"mlx.{op}: past INT32_MAX elements MLX runs its 'large' kernels, not instantiated here")
    dim0 = shape[-1]
    dim1 = shape[-2] if ndim > 1 else 1
    rest = out.numel() // (dim0 * dim1)
    name = f"g{ndim}_{op}{TYPE_NAME[out.dtype]}"
    if ndim == 1:  # binary_g_nd1 takes the two strides as scalars
        strides = (sa[0], sb[0])
    else:
        strides = (int64s(sa, out), int64s(sb, out))
    launch = launcher(backend, "mlx_binary", name, span(a), span(b), out, *strides,
                      threads=(dim0, dim1, rest), group_size=block_dims(dim0, dim1, rest))
    return Prepared(launch, out, (name,))


def _binary_op(op: str) -> AnchorOp:
    def prepare(backend: str, a: torch.Tensor, b: torch.Tensor) -> Prepared:
        a, b = torch.broadcast_tensors(a, b)
        return binary_launch(backend, op, a, b, torch.empty(a.shape, dtype=a.dtype, device=a.device))

    return register(AnchorOp(
        name=f"mlx.{op.lower()}", anchor="mlx", family="elementwise", dtypes=FLOATS, prepare_fn=prepare,
        doc=f"MLX's {op} (binary_ops.h) through binary.h, with the kernel mlx/backend/metal/binary.cpp "
            f"binary_op_gpu_inplace picks: sv/vs/vv (…n from 2^16 elements) or g1-g3 for broadcasts.",
    ))


ADD = _binary_op("Add")
SUBTRACT = _binary_op("Subtract")
MULTIPLY = _binary_op("Multiply")
DIVIDE = _binary_op("Divide")
