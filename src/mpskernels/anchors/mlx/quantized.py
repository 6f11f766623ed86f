"""MLX's affine-quantized matrix-vector product (quantized.h): 4-bit weights, groups of 64, y = x @ W^T with
W = scales * q + biases per group of 64 along K.

Host logic after mlx/backend/metal/quantized.cpp: QuantizedMatmul::eval_gpu (M below the qmv batch limit is a
matrix-vector product), dispatch_qmv (K of 64 or 128 goes to qmv_quad; M >= 2 to qmv_wide on generation 15 and
later: neither is instantiated here and both are refused) and qmv (the "fast" kernel when N is a multiple of 8 and
K of 512 (qmv_fast_k_alignment), else the guarded one; 2 simdgroups of 32 threads, each threadgroup 8 outputs).
The wheel's qmv_fast also has a partial-rows form; the host code we read never selects it, so neither do we.
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


def prepare_qmv(backend: str, x: torch.Tensor, w: torch.Tensor, scales: torch.Tensor, biases: torch.Tensor, *,
                arch: str = DEFAULT_ARCH) -> Prepared:
    dtype = check_dtype("mlx.affine_qmv", x, scales, biases)
    row_contiguous("mlx.affine_qmv", x, w, scales, biases)
    if w.dtype not in (torch.int32, torch.uint32) or w.dim() != 2:
        raise TypeError("mlx.affine_qmv: w holds the packed 4-bit weights, (N, K / 8) 32-bit words")
    n, k = w.shape[0], w.shape[1] * PACK_FACTOR
    m = x.numel() // k if x.shape[-1] == k else 0
    if m == 0 or scales.shape != (n, k // GROUP_SIZE) or biases.shape != scales.shape:
        raise ValueError(f"mlx.affine_qmv: x (..., {k}), scales and biases ({n}, {k // GROUP_SIZE}) expected")
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
    unused = (0, int32s([1], x), int64s([0], x), 0, int32s([1], x), int64s([0], x), int64s([0], x), int64s([0], x))
    group = (BK, 2, 1)
    launch = launcher(backend, "mlx_quantized", name, w, scales, biases, x, out, k, n, *unused,
                      **threadgroups((m, -(-n // BN), 1), group))
    return Prepared(launch, out, (name,))


QMV = register(AnchorOp(
    name="mlx.affine_qmv", anchor="mlx", family="quantized_matmul", dtypes=FLOATS, prepare_fn=prepare_qmv,
    doc="MLX's affine 4-bit, group-64 matrix-vector product (quantized.h affine_qmv_fast / affine_qmv), launched "
        "as mlx/backend/metal/quantized.cpp qmv does; inputs x (M, K), w packed (N, K/8) (see pack), scales and "
        "biases (N, K/64) in x's dtype.",
))
