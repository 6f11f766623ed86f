"""Softmax and log-softmax over the last dimension: softmax(x * scale + mask), mask optional; with `softcap`,
softmax(softcap * tanh(x * scale / softcap) + mask) (Gemma-2's attention-logit soft-capping, before the mask as in
its eager attention).

Mask rule: `mask` has x's dtype and broadcasts to x's shape by PyTorch's rules without growing it (at most x.dim()
dimensions; each, aligned from the right, equals x's or is 1), so the output always has x's shape. Typical masks:
the same shape as x, a row-broadcast `[..., 1, L]`, `[L]`, or a causal `[Q, K]` for scores `[B, H, Q, K]`. A mask
whose last dimension is 1 (or a 0-d mask) runs the reference; so does one whose broadcast pattern needs more than
two groups of x's leading dimensions (only possible for x with 6 or more dimensions).

Non-finite values follow PyTorch: a row that is -inf everywhere (fully masked) gives NaN, as torch.softmax does; a
row containing +inf or NaN gives NaN throughout.

The plan picks a variant by row length L (see metal/softmax.metal): `simd` (at most 128 16-byte chunks: 512 floats, 1024
halves; 1 to 32 lanes per row, several rows per SIMD group), `block` (at most 4096 chunks: 16384 floats, 32768 halves;
2048 chunks, 16384 halves, for unmasked 16-bit rows; one threadgroup per row; both hold 4 chunks per thread in
registers: one read and one write per element), `wide` (at most 8192 chunks: 32768 floats, 65536 halves; `block` at 8
chunks per thread) and `looped` (any L, online softmax: two reads and one write per element).
"""

from __future__ import annotations

import math

import torch

from .spec import DTYPE_NAMES, FLOAT_DTYPES, KernelFamily, LaunchPlan, Scalar, TensorMeta, fits_uint32, like

CHUNK_BYTES = 16  # a thread moves 16-byte chunks (metal/chunk_io.h): 4 floats or 8 halves / bfloats
SIMD_SIZE = 32
MAX_GROUP = 1024
ROW_CHUNKS = 4  # chunks a thread of the simd and block variants holds (ROW_CHUNKS in metal/softmax.metal)
SIMD_ROW_CHUNKS = SIMD_SIZE * ROW_CHUNKS  # longest row (in chunks) one SIMD group holds in registers
BLOCK_ROW_CHUNKS = MAX_GROUP * ROW_CHUNKS  # longest row (in chunks) one threadgroup holds in registers
WIDE_CHUNKS = 2 * ROW_CHUNKS  # chunks a thread of the wide variant holds
WIDE_ROW_CHUNKS = MAX_GROUP * WIDE_CHUNKS  # longest row (in chunks) the wide variant holds
# Unmasked 16-bit rows past this many chunks (16384 halves) take the wide variant although block could hold them:
# a 32000-wide vocabulary row then runs 512 threads of 8 chunks instead of 1000 of 4. Held as loaded bits, 8 chunks
# need 32 registers of data where 4 chunks of fp32 rows need 16, so two such rows fit a core's registers where one
# 1000-thread row did, and one row's reductions overlap the other's loads. NVIDIA lane (H100, side by side, one
# run): 2048 x 32000 softmax bf16 175.8 -> 140.1 us, fp16 175.2 -> 147.0; log_softmax 137.0 -> 115.3, 138.7 ->
# 116.4 (1.19-1.25x); every other lane case within 2%. fp32 rows of 16384 floats (4096 chunks) stay block, and so
# do masked 16-bit rows, which the kernel holds as fp32 copies (64 registers of data at 8 chunks; not measured).
WIDE_16BIT_FROM_CHUNKS = BLOCK_ROW_CHUNKS // 2
SIMD_ROWS_PER_GROUP = 8  # SIMD groups per threadgroup in the simd variant
LOOPED_GROUP = 1024  # threadgroup size of the looped variant
MASK_GROUPS = 2  # groups of leading dimensions the kernels' mask indexing describes
UNUSED_GROUP = (1, 1, 0)  # (div, mod, stride) of a group that contributes nothing


# ---- references: plain PyTorch, computed in fp32 (float64 stays float64), returned in x's dtype ----


def logits(x: torch.Tensor, mask: torch.Tensor | None, scale: float, softcap: float | None = None) -> torch.Tensor:
    acc = torch.promote_types(x.dtype, torch.float32)
    v = x.to(acc) * scale
    if softcap is not None:
        v = torch.tanh(v / softcap) * softcap
    if mask is not None:
        v = v + mask.to(acc)
    return v


def softmax_reference(x: torch.Tensor, mask: torch.Tensor | None = None, scale: float = 1.0,
                      softcap: float | None = None) -> torch.Tensor:
    return torch.softmax(logits(x, mask, scale, softcap), dim=-1).to(x.dtype)


def log_softmax_reference(x: torch.Tensor, mask: torch.Tensor | None = None, scale: float = 1.0,
                          softcap: float | None = None) -> torch.Tensor:
    return torch.log_softmax(logits(x, mask, scale, softcap), dim=-1).to(x.dtype)


# ---- mask broadcasting ----


def mask_groups(x_shape: tuple[int, ...], mask_shape: tuple[int, ...]) -> tuple[tuple[int, int, int], ...]:
    """(div, mod, stride) for each run of x's leading dimensions the mask does not broadcast over, outermost first:
    output row r reads mask row sum((r // div % mod) * stride) (the mask is contiguous)."""
    lead = x_shape[:-1]
    mask_lead = (1,) * (len(x_shape) - len(mask_shape)) + tuple(mask_shape[:-1])
    runs: list[list] = []  # [mask has this run (not broadcast), size]
    for size, mask_size in zip(lead, mask_lead):
        if size == 1:
            continue  # a size-1 dimension indexes nothing
        full = mask_size == size
        if runs and runs[-1][0] == full:
            runs[-1][1] *= size
        else:
            runs.append([full, size])
    groups = []
    inner = mask_inner = 1
    for full, size in reversed(runs):
        if full:
            groups.append((inner, size, mask_inner))
            mask_inner *= size
        inner *= size
    return tuple(reversed(groups))


# ---- launch plan ----


def chunks_of(cols: int, dtype: torch.dtype) -> int:
    return -(-cols // (CHUNK_BYTES // torch.empty((), dtype=dtype).element_size()))


def variant_for(cols: int, dtype: torch.dtype = torch.float32, masked: bool = False) -> str:
    chunks = chunks_of(cols, dtype)
    if chunks <= SIMD_ROW_CHUNKS:
        return "simd"
    if chunks <= (BLOCK_ROW_CHUNKS if dtype == torch.float32 or masked else WIDE_16BIT_FROM_CHUNKS):
        return "block"
    if chunks <= WIDE_ROW_CHUNKS:
        return "wide"
    return "looped"


def row_lanes(cols: int, dtype: torch.dtype = torch.float32) -> int:
    """Lanes per row of the simd variant: the fewest (a power of two) holding the row at ROW_CHUNKS chunks each,
    so short rows share a SIMD group and every lane loads (128 halves: 4 lanes, 8 rows per SIMD group)."""
    lanes = 1
    while lanes * ROW_CHUNKS < chunks_of(cols, dtype):
        lanes *= 2
    return lanes


def geometry(rows: int, cols: int, dtype: torch.dtype = torch.float32,
             masked: bool = False) -> tuple[str, int, int]:
    """(variant, total threads, threadgroup size) for `rows` rows of length `cols`."""
    variant = variant_for(cols, dtype, masked)
    if variant == "simd":
        threads = rows * row_lanes(cols, dtype)
        group = min(SIMD_ROWS_PER_GROUP * SIMD_SIZE, -(-threads // SIMD_SIZE) * SIMD_SIZE)
        return variant, threads, group
    if variant in ("block", "wide"):
        held = ROW_CHUNKS if variant == "block" else WIDE_CHUNKS
        group = -(-chunks_of(cols, dtype) // (held * SIMD_SIZE)) * SIMD_SIZE
    else:
        group = LOOPED_GROUP
    return variant, rows * group, group


def make_plan(op: str):
    def plan(x: TensorMeta, mask: TensorMeta | None, scale: float, softcap: float | None = None) -> LaunchPlan:
        cols = x.shape[-1]
        rows = 1
        for d in x.shape[:-1]:
            rows *= d
        variant, threads, group = geometry(rows, cols, x.dtype, mask is not None)
        groups = mask_groups(x.shape, mask.shape) if mask is not None else ()
        groups = groups + (UNUSED_GROUP,) * (MASK_GROUPS - len(groups))
        mask_args = tuple(Scalar(v, "uint") for g in groups for v in g)
        return LaunchPlan(
            kernel=f"{op}_{variant}_{DTYPE_NAMES[x.dtype]}",
            buffers=("x", "mask" if mask is not None else None, "out", Scalar(scale, "float"), Scalar(cols, "uint"),
                     *mask_args) + ((Scalar(row_lanes(cols, x.dtype), "uint"),) if variant == "simd" else ()),
            threads=(threads, 1, 1),
            group_size=(group, 1, 1),
            # without a cap one specialisation serves every call (its value is then never read)
            constants={"has_mask": mask is not None, "has_softcap": softcap is not None,
                       "softcap": 0.0 if softcap is None else float(softcap)},
        )

    return plan


# ---- validation and constraints ----


def validate(inputs) -> None:
    x, mask, softcap = inputs["x"], inputs["mask"], inputs.get("softcap")  # the dispatcher drops a default softcap
    if softcap is not None and not (math.isfinite(softcap) and softcap > 0):
        raise ValueError(f"softcap must be a positive finite number (or None), got {softcap}")
    if mask is None:
        return
    fits = mask.dim() <= x.dim() and all(m in (1, d) for m, d in zip(reversed(mask.shape), reversed(x.shape)))
    if not fits:
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast to x's shape {tuple(x.shape)} "
                         f"(each mask dimension, aligned from the right, must equal x's or be 1)")


def needs_a_dimension(inputs) -> str | None:
    """x is 0-dimensional"""
    return "x has no dimension to normalise over" if inputs["x"].dim() == 0 else None


def mask_spans_the_row(inputs) -> str | None:
    """the mask broadcasts along the last dimension (its last size is 1, or it is 0-d)"""
    x, mask = inputs["x"], inputs["mask"]
    if mask is not None and (mask.dim() == 0 or mask.shape[-1] != x.shape[-1]):
        return f"mask of shape {tuple(mask.shape)} broadcasts along the last dimension"
    return None


def mask_pattern_is_simple(inputs) -> str | None:
    """the mask's broadcast pattern needs more than two groups of leading dimensions"""
    x, mask = inputs["x"], inputs["mask"]
    if mask is not None and len(mask_groups(tuple(x.shape), tuple(mask.shape))) > MASK_GROUPS:
        return f"mask of shape {tuple(mask.shape)} broadcasts to {tuple(x.shape)} in more than {MASK_GROUPS} groups"
    return None


def grid_fits_uint32(inputs) -> str | None:
    """the launch grid has 2^32 threads or more"""
    x = inputs["x"]
    rows = x.numel() // x.shape[-1] if x.shape[-1] else 0
    _, threads, _ = geometry(rows, x.shape[-1])
    return f"the launch needs {threads} threads, more than 32-bit indexing covers" if threads >= 2**32 else None


CONSTRAINTS = (needs_a_dimension, mask_spans_the_row, mask_pattern_is_simple, fits_uint32("x"), grid_fits_uint32)


# ---- examples ----


def examples(dtype: torch.dtype):
    gen = torch.Generator().manual_seed(0)

    def randn(*shape, std=1.0):
        return (torch.randn(*shape, generator=gen) * std).to(dtype)

    def with_neg_inf(mask: torch.Tensor, fraction: float) -> torch.Tensor:
        hit = torch.rand(mask.shape, generator=gen) < fraction
        return mask.masked_fill(hit, float("-inf")).to(dtype)

    causal = torch.full((32, 32), float("-inf")).triu(1)[:3]  # rows 0..2 of a causal mask over 32 keys
    looped_mask = torch.zeros(17000)
    looped_mask[:5000] = float("-inf")  # the first threads' first step sees only -inf
    return [
        (randn(33, 31), None, 1.0),  # simd: 31 < 32 columns, 33 rows (a partial last threadgroup)
        (randn(2, 3, 32, std=4.0), causal.to(dtype), 0.5),  # simd: [Q, K] mask over [B, Q, K]
        (randn(5, 1), None, 1.0),  # a single column
        (randn(2, 2, 33), with_neg_inf(torch.randn(2, 2, 33, generator=gen), 0.2), 0.3),  # same-shape mask
        (randn(2, 3, 1100), with_neg_inf(torch.randn(2, 1, 1100, generator=gen), 0.1), 0.125),  # block, [.., 1, L]
        (randn(2, 17000, std=8.0), looped_mask.to(dtype), 1.0),  # wide in fp32 (block in 16-bit), [L] mask
        (randn(1, 33000, std=200.0), None, 1.0),  # looped in fp32 (wide in 16-bit), large magnitudes
        # soft-capped (Gemma-2's attention scores: cap 50 after the scale, then an additive causal mask)
        (randn(2, 3, 32, std=60.0), causal.to(dtype), 0.0625 * 16, 50.0),
        (randn(2, 1100, std=30.0), None, 1.0, 5.0),  # block
    ]


def fallback_examples(dtype: torch.dtype):
    gen = torch.Generator().manual_seed(1)
    x6 = torch.randn(2, 2, 2, 2, 2, 3, generator=gen).to(dtype)
    return [
        (torch.tensor(0.75).to(dtype), None, 1.0),
        (torch.randn(2, 5, generator=gen).to(dtype), torch.randn(2, 1, generator=gen).to(dtype), 1.0),
        (x6, torch.randn(2, 1, 2, 1, 2, 3, generator=gen).to(dtype), 0.5),  # three groups of leading dimensions
    ]


def family(name: str, reference, description: str, fusions: str) -> KernelFamily:
    return KernelFamily(
        name=name,
        source="softmax.metal",
        schema="(Tensor x, Tensor? mask=None, float scale=1.0, float? softcap=None) -> Tensor",
        reference=reference,
        dtypes=FLOAT_DTYPES,
        outputs={"out": like("x")},
        plan=make_plan(name),
        validate=validate,
        validate_is_static=True,
        constraints=CONSTRAINTS,
        description=description,
        fusions=fusions,
        examples=examples,
        fallback_examples=fallback_examples,
    )


SOFTMAX = family(
    "softmax", softmax_reference,
    "softmax(x * scale + mask) over the last dimension; mask optional, broadcast to x; optional logit soft-capping",
    "scale, soft-cap, mask add, max, exp, sum and normalise in one pass for rows up to 128 KiB (two reads above)",
)
LOG_SOFTMAX = family(
    "log_softmax", log_softmax_reference,
    "log_softmax(x * scale + mask) over the last dimension; mask optional, broadcast to x; optional logit "
    "soft-capping",
    "scale, soft-cap, mask add, max, log-sum-exp and subtract in one pass for rows up to 128 KiB (two reads above)",
)
FAMILIES = (SOFTMAX, LOG_SOFTMAX)
