"""MLX's affine-quantized matrix-vector product (quantized.h): 4-bit weights, groups of 64, y = x @ W^T with
W = scales * q + biases per group of 64 along K.

Host logic after mlx/backend/metal/quantized.cpp: QuantizedMatmul::eval_gpu (M below the qmv batch limit is a
matrix-vector product), dispatch_qmv (K of 64 or 128 goes to qmv_quad; M >= 2 to qmv_wide on generation 15 and
later: neither is instantiated here and both are refused) and qmv (the "fast" kernel when N is a multiple of 8 and
K of 512 (qmv_fast_k_alignment), else the guarded one; 2 simdgroups of 32 threads, each threadgroup 8 outputs).
The wheel's qmv_fast also has a partial-rows form; the host code we read never selects it, so neither do we.

affine_qmm_t (the tiled product for M at or above the qmv batch limit), after QuantizedMatmul::eval_gpu, qmm_splitk
and qmm: 32 x 32 output tiles, threadgroups of (32, 2, 2), the aligned-N variant when N is a multiple of 32.
Refused where MLX runs another kernel: M below get_qmv_batch_limit (qmv), or few enough tiles that qmm_splitk
splits K (affine_qmm_t_splitk and its reduction: not instantiated here). The NAX kernels need generation 17.
"""

from __future__ import annotations

import torch

from ..op import AnchorOp, Prepared, register
from .attention import DEFAULT_ARCH
from .launch import FLOATS, TYPE_STRING, check_dtype, int32s, int64s, launcher, row_contiguous, threadgroups

BITS = 4
GROUP_SIZE = 64
PACK_FACTOR = 32 // BITS  # values per uint32
BN, BK = 8, 32


def fast_k_alignment(bits: int = BITS) -> int:
    """qmv_fast_k_alignment: pack factor x packs per thread (2) x 32 lanes."""
    return (32 // bits) * (1 if bits == 2 else 2) * 32


def arch_generation(arch: str) -> int:
    """17 for "applegpu_g17s" (Metal's architecture name: generation digits, then the size class)."""
    return int(arch.rstrip("gpsd").rsplit("g", 1)[-1])


def pack(q: torch.Tensor) -> torch.Tensor:
    """Packs 4-bit values (integers 0..15, the last axis a multiple of 8) into MLX's uint32 layout: value j of a word
    in bits 4j..4j+3 (built in int64, as torch's uint32 has little arithmetic)."""
    q = q.to(torch.int64).reshape(*q.shape[:-1], -1, PACK_FACTOR)
    shifts = torch.arange(PACK_FACTOR, dtype=torch.int64) * BITS
    words = (q << shifts.to(q.device)).sum(-1)
    return torch.where(words >= 2**31, words - 2**32, words).to(torch.int32).view(torch.uint32)


def unbatched(x: torch.Tensor) -> tuple:
    """The batch arguments MLX's quantized kernels take after their sizes, for one unbatched matrix (x_batch_ndims
    0, its shape and strides, w's batch ndims 0, shape and strides, and the scales' and biases' strides)."""
    return (0, int32s([1], x), int64s([0], x), 0, int32s([1], x), int64s([0], x), int64s([0], x), int64s([0], x))


def checked_operands(name: str, x: torch.Tensor, w: torch.Tensor, scales: torch.Tensor,
                     biases: torch.Tensor) -> tuple[torch.dtype, int, int, int]:
    """(dtype, N, K, M) of a quantized matmul's operands in MLX's 4-bit layout, or the error naming the kernel."""
    dtype = check_dtype(name, x, scales, biases)
    row_contiguous(name, x, w, scales, biases)
    if w.dtype not in (torch.int32, torch.uint32) or w.dim() != 2:
        raise TypeError(f"{name}: w holds the packed 4-bit weights, (N, K / 8) 32-bit words")
    n, k = w.shape[0], w.shape[1] * PACK_FACTOR
    m = x.numel() // k if x.shape[-1] == k else 0
    if m == 0 or scales.shape != (n, k // GROUP_SIZE) or biases.shape != scales.shape:
        raise ValueError(f"{name}: x (..., {k}), scales and biases ({n}, {k // GROUP_SIZE}) expected")
    return dtype, n, k, m


def prepare_qmv(backend: str, x: torch.Tensor, w: torch.Tensor, scales: torch.Tensor, biases: torch.Tensor, *,
                arch: str = DEFAULT_ARCH) -> Prepared:
    dtype, n, k, m = checked_operands("mlx.affine_qmv", x, w, scales, biases)
    if k in (64, 128):
        raise ValueError("mlx.affine_qmv: MLX routes K of 64 or 128 to qmv_quad, not instantiated here")
    if m >= 2 and arch_generation(arch) >= 15:
        raise ValueError("mlx.affine_qmv: MLX routes M >= 2 to qmv_wide on this GPU, not instantiated here")
    w = w.view(torch.uint32)  # the kernel's `const device uint32_t*`; int32 words carry the same bits
    fast = n % BN == 0 and k % fast_k_alignment() == 0
    name = f"affine_qmv{'_fast' if fast else ''}_{TYPE_STRING[dtype]}_gs_{GROUP_SIZE}_b_{BITS}_batch_0"
    out = torch.empty(*x.shape[:-1], n, dtype=dtype, device=x.device)
    # Unbatched, MLX binds nothing to buffers 7-14 (the batch shapes and strides the kernel reads only when
    # batched); the emulator binds every declared buffer, so they get empty batch descriptions.
    unused = unbatched(x)
    group = (BK, 2, 1)
    launch = launcher(backend, "mlx_quantized", name, w, scales, biases, x, out, k, n, *unused,
                      **threadgroups((m, -(-n // BN), 1), group))
    return Prepared(launch, out, (name,))


QMV = register(AnchorOp(
    name="mlx.affine_qmv", anchor="mlx", family="quantized_linear", dtypes=FLOATS, prepare_fn=prepare_qmv,
    doc="MLX's affine 4-bit, group-64 matrix-vector product (quantized.h affine_qmv_fast / affine_qmv), launched "
        "as mlx/backend/metal/quantized.cpp qmv does; inputs x (M, K), w packed (N, K/8) (see pack), scales and "
        "biases (N, K/64) in x's dtype.",
))


def qmv_batch_limit(k: int, n: int, arch: str = DEFAULT_ARCH) -> int:
    """get_qmv_batch_limit: below this many rows MLX runs a matrix-vector kernel (qmv), from it the tiled one."""
    generation, size = arch_generation(arch), arch[-1]
    if generation >= 17 and size != "d":
        return 33 if k <= 2048 and n <= 2048 else 25 if k <= 4096 and n <= 4096 else 13
    if generation >= 15 and size != "d":
        return 13 if k <= 2048 and n <= 2048 else 15 if k <= 4096 and n <= 4096 else 13
    raise ValueError(f"mlx.affine_qmm_t: the qmv batch limit of {arch} is not transcribed here (generations 15+ "
                     f"other than Ultra)")


def splitk_partitions(m: int, n: int, k: int) -> int:
    """qmm_splitk's split_k: partitions of K aiming at about 512 threadgroups (1: it runs plain qmm)."""
    current = -(-n // QMM_BN) * -(-m // QMM_BM)
    k_align = max(GROUP_SIZE, 32)
    split = min(max(1, 512 // current), k // k_align)
    while split > 1 and k % (split * k_align):
        split -= 1
    return split


QMM_BM = QMM_BN = 32


def prepare_qmm_t(backend: str, x: torch.Tensor, w: torch.Tensor, scales: torch.Tensor, biases: torch.Tensor, *,
                  arch: str = DEFAULT_ARCH) -> Prepared:
    dtype, n, k, m = checked_operands("mlx.affine_qmm_t", x, w, scales, biases)
    if m < qmv_batch_limit(k, n, arch):
        raise ValueError(f"mlx.affine_qmm_t: MLX runs a matrix-vector kernel for {m} rows (batch limit "
                         f"{qmv_batch_limit(k, n, arch)} at K {k}, N {n})")
    if splitk_partitions(m, n, k) > 1:
        raise ValueError(f"mlx.affine_qmm_t: MLX splits K in {splitk_partitions(m, n, k)} for M {m}, N {n} "
                         f"(affine_qmm_t_splitk, not instantiated here)")
    w = w.view(torch.uint32)
    aligned = n % QMM_BN == 0
    name = f"affine_qmm_t_{TYPE_STRING[dtype]}_gs_{GROUP_SIZE}_b_{BITS}_alN_{'true' if aligned else 'false'}_batch_0"
    out = torch.empty(*x.shape[:-1], n, dtype=dtype, device=x.device)
    unused = unbatched(x)
    launch = launcher(backend, "mlx_quantized", name, w, scales, biases, x, out, k, n, m, *unused,
                      **threadgroups((-(-n // QMM_BN), -(-m // QMM_BM), 1), (32, 2, 2)))
    return Prepared(launch, out, (name,))


QMM_T = register(AnchorOp(
    name="mlx.affine_qmm_t", anchor="mlx", family="quantized_linear", dtypes=FLOATS, prepare_fn=prepare_qmm_t,
    doc="MLX's affine 4-bit, group-64 tiled product with transposed weights (quantized.h affine_qmm_t), launched "
        "as mlx/backend/metal/quantized.cpp qmm does, for the row counts where MLX runs it; inputs as "
        "mlx.affine_qmv's.",
))
