"""MLX's matrix-vector products (gemv.h): "gemv" for x @ W^T with W (N, K) row-major (a Linear layer's weight),
"gemv_t" for x @ W with W (K, N) row-major.

Host logic after mlx/backend/metal/matmul.cpp gemv_axbpy (without the axpby epilogue, unbatched): the tile
(threadgroup BM x BN simdgroups, each SM x SN threads, each TM x TN elements) from the input and output lengths,
threadgroups of (32, BN, BM) threads, ceil(outputs / outputs-per-threadgroup) of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..op import AnchorOp, Prepared, register
from .launch import FLOATS, TYPE_NAME, check_dtype, int32s, int64s, launcher, row_contiguous, threadgroups


@dataclass(frozen=True)
class Tile:
    bm: int = 1
    bn: int = 1
    sm: int = 1
    sn: int = 32
    tm: int = 4
    tn: int = 4

    def suffix(self) -> str:
        return f"_bm{self.bm}_bn{self.bn}_sm{self.sm}_sn{self.sn}_tm{self.tm}_tn{self.tn}_nc0_axpby0"


def gemv_tile(in_len: int, out_len: int) -> tuple[Tile, int]:
    """(tile, outputs per threadgroup) of the "gemv" kernel (matrix rows are outputs)."""
    bm, bn, sm, sn = (8 if out_len >= 4096 else 4), 1, 1, 32
    if in_len <= 64:
        bm, sm, sn = 1, 8, 4
    elif in_len >= 16 * out_len:
        bm, bn = 1, 8
    tm = 1 if out_len < 4 else 4
    return Tile(bm, bn, sm, sn, tm, 4), bm * sm * tm


def gemv_t_tile(in_len: int, out_len: int) -> tuple[Tile, int]:
    """(tile, outputs per threadgroup) of the "gemv_t" kernel (matrix columns are outputs)."""
    sm, sn = (4, 8) if in_len >= 8192 and out_len >= 2048 else (8, 4)
    bn = 16 if out_len >= 2048 else 4 if out_len >= 512 else 2
    tn = 1 if out_len < 4 else 4
    return Tile(1, bn, sm, sn, 4, tn), bn * sn * tn


def _prepare(backend: str, x: torch.Tensor, w: torch.Tensor, transposed: bool) -> Prepared:
    op = "mlx.gemv_t" if transposed else "mlx.gemv"
    dtype = check_dtype(op, x, w)
    row_contiguous(op, x, w)
    if w.dim() != 2 or x.shape[-1] != (w.shape[0] if transposed else w.shape[1]) or x.numel() != x.shape[-1]:
        raise ValueError(f"{op}: x is one vector (K,) or (1, K); w is {'(K, N)' if transposed else '(N, K)'}")
    in_len = x.shape[-1]
    out_len = w.shape[1] if transposed else w.shape[0]
    tile, per_group = (gemv_t_tile if transposed else gemv_tile)(in_len, out_len)
    name = f"{'gemv_t' if transposed else 'gemv'}_{TYPE_NAME[dtype]}{tile.suffix()}"
    out = torch.empty(*x.shape[:-1], out_len, dtype=dtype, device=x.device)
    zero = int64s([0], x)
    # Buffers 2, 7, 8, 13 and 14 (bias, alpha, beta and the bias strides) belong to the axpby epilogue, which
    # MLX leaves unbound here; the emulator binds every declared buffer, so they get harmless values.
    args = (w, x, x, out, in_len, out_len, w.shape[1], 1.0, 0.0, 1, int32s([1], x), zero, zero, zero, 0)
    group = (32, tile.bn, tile.bm)
    launch = launcher(backend, "mlx_gemv", name, *args, **threadgroups((-(-out_len // per_group), 1, 1), group))
    return Prepared(launch, out, (name,))


def prepare_gemv(backend: str, x: torch.Tensor, w: torch.Tensor) -> Prepared:
    return _prepare(backend, x, w, transposed=False)


def prepare_gemv_t(backend: str, x: torch.Tensor, w: torch.Tensor) -> Prepared:
    return _prepare(backend, x, w, transposed=True)


GEMV = register(AnchorOp(
    name="mlx.gemv", anchor="mlx", family="gemv", dtypes=FLOATS, prepare_fn=prepare_gemv,
    doc="x @ w.T for one vector x and w (N, K) row-major (F.linear at decode): gemv.h gemv, tile as "
        "mlx/backend/metal/matmul.cpp gemv_axbpy picks it.",
))
GEMV_T = register(AnchorOp(
    name="mlx.gemv_t", anchor="mlx", family="gemv", dtypes=FLOATS, prepare_fn=prepare_gemv_t,
    doc="x @ w for one vector x and w (K, N) row-major: gemv.h gemv_t, tile as mlx/backend/metal/matmul.cpp "
        "gemv_axbpy picks it.",
))
