"""Weight-only quantised linear layer: out = x @ dequantise(w_q, scales, biases)^T [+ bias], 4- or 8-bit affine
weights in groups along K (layout: src/mpskernels/quantize/packing.py), activations fp16 / bf16 / fp32."""

from __future__ import annotations

import torch

from ..quantize.packing import BITS, GROUP_SIZES, dequantize, pack
from .spec import DTYPE_NAMES, FLOAT_DTYPES, KernelFamily, LaunchPlan, Scalar, TensorMeta

SIMD = 32
QMV_MAX_ROWS = 8  # rows of x up to which the matrix-vector kernel runs (decode); more take the tiled kernel
QMV_SIMD_GROUPS = 2  # metal/quantized.metal: QMV_SIMD_GROUPS, QMV_ROWS, QMM_BM, QMM_BN, QMM_THREADS
QMV_ROWS = 4
# Up to this many output columns the qmv SIMD groups of a threadgroup share one row set and split its K steps
# (metal/quantized.metal, split_k): the grid is otherwise too small to keep enough loads in flight.
QMV_SPLIT_MAX_N = 8192
QMM_BM = 32
QMM_BN = 32
QMM_THREADS = 128


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def reference(x: torch.Tensor, w_q: torch.Tensor, scales: torch.Tensor, biases: torch.Tensor,
              bias: torch.Tensor | None, bits: int, group_size: int) -> torch.Tensor:
    """Dequantise, then matmul in fp32 (float64 stays float64, so the tests' oracle is float64)."""
    acc = torch.promote_types(x.dtype, torch.float32)
    w = dequantize(w_q, scales, biases, bits, group_size, acc)
    y = x.to(acc) @ w.t()
    if bias is not None:
        y = y + bias.to(acc)
    return y.to(x.dtype)


def plan(x: TensorMeta, w_q: TensorMeta, scales: TensorMeta, biases: TensorMeta, bias: TensorMeta | None,
         bits: int, group_size: int) -> LaunchPlan:
    k = x.shape[-1]
    m = x.numel() // k
    n = w_q.shape[0]
    buffers = ("x", "w_q", "scales", "biases", "bias" if bias is not None else None, "out",
               Scalar(k, "uint"), Scalar(n, "uint"), Scalar(group_size, "uint"))
    constants = {"has_bias": bias is not None}
    name = f"{bits}bit_{DTYPE_NAMES[x.dtype]}"
    if m <= QMV_MAX_ROWS:
        k_split = QMV_SIMD_GROUPS if n <= QMV_SPLIT_MAX_N else 1
        row_sets = QMV_SIMD_GROUPS // k_split
        return LaunchPlan(kernel=f"quantized_qmv_{name}", buffers=buffers,
                          threads=(_ceil(n, QMV_ROWS * row_sets) * QMV_SIMD_GROUPS * SIMD, m, 1),
                          group_size=(QMV_SIMD_GROUPS * SIMD, 1, 1), constants={**constants, "split_k": k_split > 1})
    return LaunchPlan(kernel=f"quantized_qmm_{name}", buffers=(*buffers, Scalar(m, "uint")),
                      threads=(_ceil(n, QMM_BN) * QMM_THREADS, _ceil(m, QMM_BM), 1),
                      group_size=(QMM_THREADS, 1, 1), constants=constants)


def out_shape(inputs) -> tuple[tuple[int, ...], torch.dtype]:
    x, w_q = inputs["x"], inputs["w_q"]
    return (*x.shape[:-1], w_q.shape[0]), x.dtype


def validate(inputs) -> None:
    """Shapes and formats the op itself rejects, whichever backend runs it."""
    x, w_q, scales, biases, bias = (inputs[k] for k in ("x", "w_q", "scales", "biases", "bias"))
    bits, group_size = inputs["bits"], inputs["group_size"]
    if bits not in BITS:
        raise ValueError(f"bits must be one of {BITS}, got {bits}")
    if group_size not in GROUP_SIZES:
        raise ValueError(f"group_size must be one of {GROUP_SIZES}, got {group_size}")
    if w_q.dtype != torch.int32 or w_q.dim() != 2:
        raise ValueError(f"w_q must be a 2-D int32 tensor of packed words, got {w_q.dim()}-D {w_q.dtype}")
    if x.dim() == 0:
        raise ValueError("x must have at least one dimension (its last is in_features)")
    n, k = w_q.shape[0], x.shape[-1]
    if w_q.shape[1] * 32 != k * bits:  # a wrong x (a layer called on the wrong input) or a wrong w_q: name both
        raise ValueError(f"x's last dimension {k} does not match w_q: w_q of shape {tuple(w_q.shape)} holds "
                         f"{w_q.shape[1] * 32 // bits} weights a row (in_features) at {bits} bits")
    if k % group_size:
        raise ValueError(f"in_features {k} (x's last dimension) is not a multiple of group_size {group_size}")
    for name, t in (("scales", scales), ("biases", biases)):
        if tuple(t.shape) != (n, k // group_size):
            raise ValueError(f"{name} must have shape ({n}, {k // group_size}), got {tuple(t.shape)}")
    if bias is not None and tuple(bias.shape) != (n,):
        raise ValueError(f"bias must have shape ({n},), got {tuple(bias.shape)}")


def fits_uint32(inputs) -> str | None:
    """x, the output or w_q has 2^32 elements or more"""
    x, w_q = inputs["x"], inputs["w_q"]
    n = w_q.shape[0]
    m = x.numel() // max(x.shape[-1], 1) if x.dim() else 0
    biggest = max(x.numel(), m * n, w_q.numel() * 8)
    return f"{biggest} elements, more than 32-bit indexing covers" if biggest >= 2**32 else None


def grid_weights(n: int, k: int, bits: int, group_size: int, dtype: torch.dtype, gen: torch.Generator):
    """(w_q, scales, biases) of random packed values with power-of-two scales and biases on a 1/16 grid: with x on
    a 1/16 grid too, every product and sum of these small examples is exact in fp32, so the kernels' results can
    be compared with float64 at the dtype's own tolerance (random weights are tested in tests/quantize)."""
    q = torch.randint(0, 2**bits, (n, k), generator=gen)
    scales = (2.0 ** -torch.randint(3, 7, (n, k // group_size), generator=gen)).to(dtype)
    biases = (torch.randint(-8, 9, (n, k // group_size), generator=gen) / 16).to(dtype)
    return pack(q, bits), scales, biases


def examples(dtype: torch.dtype):
    """Small shapes (the emulator runs every one): decode rows 1-8 and tiled rows 9+, both bit widths and the
    three group sizes, K not a multiple of a qmv step (32 lanes x 32 values at 4 bits), N and M not multiples of
    the tiles, a bias and none."""
    gen = torch.Generator().manual_seed(7)
    cases = []
    for (m, n, k, bits, group_size, with_bias) in [
        ((1,), 13, 96, 4, 32, True),        # decode, N not a multiple of 8, K a partial step
        ((2, 3), 8, 128, 8, 64, False),     # 6 rows, qmv; 8-bit
        ((1, 8), 17, 256, 4, 128, False),   # 8 rows: the largest qmv case
        ((9,), 40, 64, 8, 32, True),        # the smallest qmm case; N a partial tile
        ((2, 19), 33, 128, 4, 64, False),   # 38 rows: M and N partial tiles
        ((33,), 24, 128, 8, 128, True),
    ]:
        w_q, scales, biases = grid_weights(n, k, bits, group_size, dtype, gen)
        x = (torch.randint(-32, 33, (*m, k), generator=gen) / 16).to(dtype)
        bias = (torch.randint(-16, 17, (n,), generator=gen) / 8).to(dtype) if with_bias else None
        cases.append((x, w_q, scales, biases, bias, bits, group_size))
    return cases


def fallback_examples(dtype: torch.dtype):
    return []


QUANTIZED_LINEAR = KernelFamily(
    name="quantized_linear",
    source="quantized.metal",
    schema="(Tensor x, Tensor w_q, Tensor scales, Tensor biases, Tensor? bias, int bits, int group_size) -> Tensor",
    reference=reference,
    dtypes=FLOAT_DTYPES,
    outputs={"out": out_shape},
    plan=plan,
    validate=validate,
    constraints=(fits_uint32,),
    description="Linear layer with 4- or 8-bit affine weights (per-group scale and bias along K), optional bias",
    fusions="weights dequantised in registers or threadgroup memory as they are read; fp32 accumulation; bias",
    dtype_args=("x", "scales", "biases", "bias"),
    aligned_inputs=("x", "w_q"),
    examples=examples,
    fallback_examples=fallback_examples,
)
FAMILIES = (QUANTIZED_LINEAR,)
