"""RMSNorm over the last dimension, x * rsqrt(mean(x^2) + eps) [* weight], alone or fused with the residual add
before it (add_rms_norm returns (rms_norm(x + residual), x + residual))."""

from __future__ import annotations

import torch

from .spec import DTYPE_NAMES, FLOAT_DTYPES, KernelFamily, LaunchPlan, Scalar, TensorMeta, fits_uint32, like

# Tunables of the row kernels (metal/rms_norm.metal, metal/layer_norm.metal and metal/group_norm.metal):
CHUNK_BYTES = 16  # a thread moves 16-byte chunks (metal/chunk_io.h)
N_CHUNKS = 4  # chunks a thread keeps in registers (N_CHUNKS in the .metal files)
SIMD = 32
MAX_GROUP = 1024
ROWS_PER_GROUP = (256, 128, 64, 32, 16, 8, 4, 2, 1)  # short rows per threadgroup: the largest dividing the row count
SHORT_ROW_GROUP = 256  # threads of a threadgroup of short rows (8 SIMD groups)


def chunk_elements(dtype: torch.dtype) -> int:
    return CHUNK_BYTES // torch.empty((), dtype=dtype).element_size()


# Elements a thread normalises where the row allows (4 chunks of fp32, 2 of a 16-bit type): the same fp32
# arithmetic per thread and the same threads per row in every dtype. The lane (H200, before) had 16-bit rows at 4
# chunks (32 elements) per thread, half as many threads as fp32, and reached 25-65% of copy bandwidth on
# 4096 x 4096 where fp32 (16 elements per thread) reached 76-80%. Rows longer than MAX_GROUP * HELD_ELEMENTS still
# take up to N_CHUNKS chunks per thread (32768 halves at 1024 threads) before looping.
HELD_ELEMENTS = 16
# From this many rows a 16-bit row longer than SIMD * HELD_ELEMENTS takes twice the elements per thread (4 chunks,
# 64 bytes, as an fp32 thread moves) and half the threads: with rows enough to fill the GPU several times over,
# more rows in flight per core and fewer reductions per byte win; with a few rows (decode), more threads per row
# finish each one sooner. Lane, H100, side by side (hardware bfloat conversion in both): 4096 x 4096 bf16
# layer_norm 38.6 -> 30.8 us (58 -> 72% of copy), fp16 36.8 -> 29.9 us; but at 8 x 4096 (decode) 3.7 -> 4.6 us,
# rms_norm 2.5 -> 2.9 us. The threshold sits between those two measured points: 512 rows of 256 threads are
# about four threadgroups per core of the largest Apple GPUs (80 cores), not a measured crossover.
MANY_ROWS = 512
# Below this many rows (decode: a batch of tokens) a row past SIMD * HELD_ELEMENTS elements takes half the elements
# per thread and twice the threads (one 16-byte chunk in 16-bit, two in fp32): the rows are fewer than a large GPU's
# cores, so the kernel's time is one threadgroup's chain of loads, reduction and stores, and more threads per row
# shorten each thread's part of it. Lane, H100, side by side in one device call (NVIDIA times, not Apple's), 8 x 4096
# at 8 elements a thread against 16: rms_norm 1.04-1.11x (fp32 2.9 -> 2.6 us), add_rms_norm 1.05-1.18x (fp32 3.8 ->
# 3.2), layer_norm 1.07-1.09x, add_layer_norm 1.09-1.14x (fp16 4.5 -> 4.0); 4096 x 4096 and 512 x 32768 unchanged
# (0.99-1.01x). 64 is a round number below the largest Apple GPUs' 80 cores (fewer rows than cores: one threadgroup
# each), not a measured crossover.
FEW_ROWS = 64


def threads_per_row(cols: int, dtype: torch.dtype, rows: int) -> int:
    """P: one SIMD group for rows of at most SIMD * HELD_ELEMENTS elements, else enough whole SIMD groups that each
    thread holds HELD_ELEMENTS, twice that for 16-bit rows from MANY_ROWS rows on, half that below FEW_ROWS rows
    (at most MAX_GROUP threads, each holding up to N_CHUNKS chunks; longer rows loop)."""
    held = HELD_ELEMENTS
    if cols > SIMD * HELD_ELEMENTS:  # shorter rows are one SIMD group whatever the count
        if rows >= MANY_ROWS and torch.empty((), dtype=dtype).element_size() == 2:
            held = 2 * HELD_ELEMENTS
        elif rows < FEW_ROWS:
            held = HELD_ELEMENTS // 2
    threads = -(-cols // held)
    return min(MAX_GROUP, -(-threads // SIMD) * SIMD)


def row_lanes(cols: int) -> int:
    """Lanes of a short row (at most SIMD * HELD_ELEMENTS elements): the fewest power of two holding it at
    HELD_ELEMENTS elements a lane, so that rows of 128 (a head dimension, as in QK-norm) take 8 lanes and four of
    them share a SIMD group, every lane loading."""
    lanes = 1
    while lanes * HELD_ELEMENTS < cols:
        lanes *= 2
    return lanes


def row_launch(cols: int, rows: int, dtype: torch.dtype) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(threads, group_size) of a row kernel: W x R threadgroups of R short rows of W lanes (W a power of two up to
    32, R the largest power of two up to 256 / W dividing the row count, so each threadgroup is whole), or one
    threadgroup of P threads per row. Where no such R fills a SIMD group (an odd row count), W = 32."""
    if cols > SIMD * HELD_ELEMENTS:
        p = threads_per_row(cols, dtype, rows)
        return (rows * p, 1, 1), (p, 1, 1)
    w = row_lanes(cols)
    r = next(r for r in ROWS_PER_GROUP if rows % r == 0 and r * w <= SHORT_ROW_GROUP)
    if w * r < SIMD:
        w = SIMD
        r = next(r for r in ROWS_PER_GROUP if rows % r == 0 and r * w <= SHORT_ROW_GROUP)
    return (w * (rows // r), r, 1), (w, r, 1)


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """fp32 for the kernel dtypes; float64 stays float64, so the tests' float64 oracle really is float64."""
    return torch.promote_types(dtype, torch.float32)


def reference(x: torch.Tensor, weight: torch.Tensor | None, eps: float, weight_offset: float = 0.0) -> torch.Tensor:
    x32 = x.to(accumulation_dtype(x.dtype))
    y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    if weight is not None:
        y = y * (weight.to(y.dtype) + weight_offset)  # the offset added in fp32, as Gemma's RMSNorm does
    return y.to(x.dtype)


def add_reference(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor | None, eps: float,
                  weight_offset: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    h = x + residual  # in the op's dtype: the updated residual is rounded before it is normalised, as unfused code
    return reference(h, weight, eps, weight_offset), h


def weight_constants(weight: TensorMeta | None, weight_offset: float) -> dict:
    """Without an offset one specialisation serves every call (the offset's value is then never read)."""
    return {"has_weight": weight is not None, "has_weight_offset": bool(weight_offset),
            "weight_offset": float(weight_offset)}


def plan(x: TensorMeta, weight: TensorMeta | None, eps: float, weight_offset: float = 0.0) -> LaunchPlan:
    cols = x.shape[-1]
    threads, group = row_launch(cols, x.numel() // cols, x.dtype)
    return LaunchPlan(
        kernel=f"rms_norm_{DTYPE_NAMES[x.dtype]}",
        buffers=("x", "weight" if weight is not None else None, "out", Scalar(eps, "float"), Scalar(cols, "uint")),
        threads=threads,
        group_size=group,
        constants=weight_constants(weight, weight_offset),
    )


def add_plan(x: TensorMeta, residual: TensorMeta, weight: TensorMeta | None, eps: float,
             weight_offset: float = 0.0) -> LaunchPlan:
    cols = x.shape[-1]
    threads, group = row_launch(cols, x.numel() // cols, x.dtype)
    return LaunchPlan(
        kernel=f"add_rms_norm_{DTYPE_NAMES[x.dtype]}",
        buffers=("x", "residual", "weight" if weight is not None else None, "out", "residual_out",
                 Scalar(eps, "float"), Scalar(cols, "uint")),
        threads=threads,
        group_size=group,
        constants=weight_constants(weight, weight_offset),
    )


def check_per_column(x: torch.Tensor, name: str, t: torch.Tensor | None) -> None:
    """`t` (weight or bias) must be one value per element of x's last dimension."""
    if t is not None and (t.dim() != 1 or x.dim() == 0 or t.shape[0] != x.shape[-1]):
        raise ValueError(f"{name} must have shape ({x.shape[-1] if x.dim() else '?'},) to match x's last "
                         f"dimension, got {tuple(t.shape)}")


def check_residual(x: torch.Tensor, residual: torch.Tensor) -> None:
    if residual.shape != x.shape:
        raise ValueError(f"residual must have x's shape {tuple(x.shape)}, got {tuple(residual.shape)}")


def check_eps(eps: float) -> None:
    """eps is added to a variance (>= 0): a negative one could make the sum negative, its rsqrt NaN."""
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")


def check_weight_offset(inputs) -> None:
    """An offset applies to a weight (x_hat * (weight + offset)); without a weight it would be a scale."""
    if inputs.get("weight_offset") and inputs["weight"] is None:  # the dispatcher drops a default offset
        raise ValueError(f"weight_offset {inputs['weight_offset']} needs a weight (it scales by weight + offset)")


def validate(inputs) -> None:
    check_per_column(inputs["x"], "weight", inputs["weight"])
    check_eps(inputs["eps"])
    check_weight_offset(inputs)


def add_validate(inputs) -> None:
    check_residual(inputs["x"], inputs["residual"])
    check_per_column(inputs["x"], "weight", inputs["weight"])
    check_eps(inputs["eps"])
    check_weight_offset(inputs)


def needs_a_dimension(inputs) -> str | None:
    """x is 0-dimensional"""
    x = inputs["x"]
    return "x has no dimension to normalise" if x.dim() == 0 else None


def grid_fits_uint32(inputs) -> str | None:
    """the launch grid has 2^32 threads or more"""
    x = inputs["x"]
    if x.dim() == 0 or x.numel() == 0:
        return None
    cols = x.shape[-1]
    rows = x.numel() // cols
    threads = rows * threads_per_row(cols, x.dtype, rows)
    return f"the launch needs {threads} threads, more than 32-bit indexing covers" if threads >= 2**32 else None


def examples(dtype: torch.dtype):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 33, generator=gen).to(dtype)
    w = (torch.rand(33, generator=gen) + 0.5).to(dtype)
    return [
        (x, w, 1e-5),
        (x[:, :31], None, 1e-6),
        (torch.randn(2, 1, 70, generator=gen).to(dtype), None, 1e-5),
        (torch.randn(5, 32, generator=gen).to(dtype), (torch.rand(32, generator=gen) + 0.5).to(dtype), 1e-5),
        (torch.randn(4, 1, generator=gen).to(dtype), None, 1e-5),  # one-element rows
        (torch.randn(2, 97, generator=gen).to(dtype), None, 0.0),  # a prime, eps 0
        # Two register steps at 1024 threads; then 27 elements past the register capacity (re-read for the store).
        (torch.randn(1, 4103, generator=gen).to(dtype), (torch.rand(4103, generator=gen) + 0.5).to(dtype), 1e-5),
        (torch.randn(1, 16411, generator=gen).to(dtype), None, 1e-5),
        # Gemma's RMSNorm: x_hat * (1 + w), its weight w stored near 0
        (torch.randn(3, 40, generator=gen).to(dtype), (torch.randn(40, generator=gen) * 0.1).to(dtype), 1e-6, 1.0),
    ]


def grid(shape: tuple[int, ...], gen: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    """Multiples of 1/16 in [-3.75, 3.75]: sums of two are exact in bfloat16 too, so the op's dtype-rounded
    residual equals the float64 oracle's and the generic float64 comparison stays meaningful. Rounding of the
    residual sum itself is tested with random data in tests/kernel_families/test_norms.py."""
    return (torch.randint(-60, 61, shape, generator=gen) / 16).to(dtype)


def add_examples(dtype: torch.dtype):
    gen = torch.Generator().manual_seed(1)
    w33 = (torch.rand(33, generator=gen) + 0.5).to(dtype)
    return [
        (grid((3, 33), gen, dtype), grid((3, 33), gen, dtype), w33, 1e-5),
        (grid((2, 1, 31), gen, dtype), grid((2, 1, 31), gen, dtype), None, 1e-6),
        (grid((4, 32), gen, dtype), grid((4, 32), gen, dtype), None, 1e-5),
        (grid((3, 1), gen, dtype), grid((3, 1), gen, dtype), None, 1e-5),
        (grid((1, 4103), gen, dtype), grid((1, 4103), gen, dtype), (torch.rand(4103, generator=gen) + 0.5).to(dtype),
         1e-5),
        (grid((1, 16411), gen, dtype), grid((1, 16411), gen, dtype), None, 1e-5),
        (grid((2, 40), gen, dtype), grid((2, 40), gen, dtype), (torch.randn(40, generator=gen) * 0.1).to(dtype), 1e-6,
         1.0),  # Gemma's RMSNorm after its residual add
    ]


def fallback_examples(dtype: torch.dtype):
    return [(torch.tensor(0.75).to(dtype), None, 1e-5)]


def add_fallback_examples(dtype: torch.dtype):
    return [(torch.tensor(0.75).to(dtype), torch.tensor(-0.25).to(dtype), None, 1e-5)]


RMS_NORM = KernelFamily(
    name="rms_norm",
    source="rms_norm.metal",
    schema="(Tensor x, Tensor? weight, float eps, float weight_offset=0.0) -> Tensor",
    reference=reference,
    dtypes=FLOAT_DTYPES,
    outputs={"out": like("x")},
    plan=plan,
    validate=validate,
    validate_is_static=True,
    constraints=(needs_a_dimension, fits_uint32("x"), grid_fits_uint32),
    description="RMSNorm over the last dimension, optional weight (times weight + weight_offset: Gemma's 1 + w)",
    fusions="square, mean, rsqrt, scale and weight in one pass per row; x read once for rows up to 64 KiB",
    examples=examples,
    fallback_examples=fallback_examples,
)

ADD_RMS_NORM = KernelFamily(
    name="add_rms_norm",
    source="rms_norm.metal",
    schema="(Tensor x, Tensor residual, Tensor? weight, float eps, float weight_offset=0.0) -> (Tensor, Tensor)",
    reference=add_reference,
    dtypes=FLOAT_DTYPES,
    outputs={"out": like("x"), "residual_out": like("x")},
    plan=add_plan,
    validate=add_validate,
    validate_is_static=True,
    constraints=(needs_a_dimension, fits_uint32("x"), grid_fits_uint32),
    description="Residual add fused into the RMSNorm after it: (rms_norm(x + residual), x + residual)",
    fusions="residual add (rounded to the dtype, as unfused) and RMSNorm in one pass per row",
    examples=add_examples,
    fallback_examples=add_fallback_examples,
)
FAMILIES = (RMS_NORM, ADD_RMS_NORM)
