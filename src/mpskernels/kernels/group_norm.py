"""GroupNorm over (N, C, *spatial) inputs: C split into `groups` groups of consecutive channels, each (sample,
group) normalised over its C/groups * prod(spatial) elements, then an optional per-channel weight and bias."""

from __future__ import annotations

import math

import torch

from .rms_norm import accumulation_dtype, check_eps, chunk_elements
from .row_stats import normalize_rows
from .spec import (DTYPE_NAMES, FLOAT_DTYPES, Dispatch, KernelFamily, LaunchPlan, Scalar, Scratch, TensorMeta,
                   fits_uint32, like)

# metal/group_norm.metal's tunables (keep in step with HELD_CHUNKS, BLOCK_CHUNKS and the kernels'
# max_total_threads_per_threadgroup):
SIMD = 32
# The one-block kernel: one threadgroup of up to ONE_BLOCK_THREADS per (sample, group), ELEMENTS_PER_THREAD
# elements a thread where the group is shorter (the same threads in every dtype); each thread holds HELD_CHUNKS
# 16-byte chunks as raw bits and streams the rest (read twice, the second time from cache).
ONE_BLOCK_THREADS = 512
ELEMENTS_PER_THREAD = 16
HELD_CHUNKS = 8
# The split path (group_norm_partials + group_norm_apply): a group over several blocks of BLOCK_THREADS threads,
# each holding BLOCK_CHUNKS chunks (a block: 16 KiB, 4096 floats or 8192 halves). 256 threads: 64 bytes in flight
# per thread, several blocks resident per core, and a 163840-element group becomes 40 (fp32) or 20 (16-bit) blocks.
BLOCK_THREADS = 256
BLOCK_CHUNKS = 4
# One threadgroup per (sample, group) is kept while the groups fill the GPU: BUSY_THREADS threads in all (2^17:
# 80 Apple GPU cores at ~1.5k resident threads each, a wave of an H200's 132 SMs at 1k). It reads x once where a
# thread's HELD_CHUNKS hold the group, and otherwise reads the rest a second time right after the first, from
# cache. Fewer threads than that (image models: 32 groups x 1..8 samples) split each group over blocks: 3E per
# element (read x, read it again, from cache where the tensor fits, write), every core busy.
BUSY_THREADS = 1 << 17


def one_block_threads(group_elems: int) -> int:
    """Threads of the one-block kernel: whole SIMD groups of ELEMENTS_PER_THREAD elements, at most 512."""
    threads = -(-group_elems // ELEMENTS_PER_THREAD)
    return max(SIMD, min(ONE_BLOCK_THREADS, -(-threads // SIMD) * SIMD))


def slice_elements(dtype: torch.dtype) -> int:
    """Elements of a group one block of the split path holds in registers."""
    return BLOCK_THREADS * BLOCK_CHUNKS * chunk_elements(dtype)


def split_blocks(n_groups: int, group_elems: int, dtype: torch.dtype) -> int:
    """Blocks per group: 1 for the one-block kernel, else enough blocks of slice_elements to cover the group."""
    blocks = -(-group_elems // slice_elements(dtype))
    busy = n_groups * one_block_threads(group_elems) >= BUSY_THREADS
    return 1 if blocks < 2 or busy else blocks


def reference(x: torch.Tensor, groups: int, weight: torch.Tensor | None, bias: torch.Tensor | None,
              eps: float) -> torch.Tensor:
    acc = accumulation_dtype(x.dtype)
    n, c = x.shape[:2]
    # Each (sample, group): C/groups channels x all spatial positions (sizes spelled out: N or HW may be 0).
    g = x.to(acc).reshape(n, groups, c // groups * math.prod(x.shape[2:]))
    y = normalize_rows(g, eps).reshape(x.shape)  # biased variance, as torch.nn.functional.group_norm
    per_channel = (1, c) + (1,) * (x.dim() - 2)
    if weight is not None:
        y = y * weight.to(acc).reshape(per_channel)
    if bias is not None:
        y = y + bias.to(acc).reshape(per_channel)
    return y.to(x.dtype)


def plan(x: TensorMeta, groups: int, weight: TensorMeta | None, bias: TensorMeta | None, eps: float) -> LaunchPlan:
    n, c = x.shape[:2]
    spatial = math.prod(x.shape[2:])  # 1 for (N, C) inputs
    group_elems = c // groups * spatial
    blocks = split_blocks(n * groups, group_elems, x.dtype)
    if blocks > 1:
        return split_plan(x, n * groups, group_elems, spatial, groups, blocks, weight, bias, eps)
    group = one_block_threads(group_elems)
    return LaunchPlan(
        kernel=f"group_norm_{DTYPE_NAMES[x.dtype]}",
        buffers=("x", "weight" if weight is not None else None, "bias" if bias is not None else None, "out",
                 Scalar(eps, "float"), Scalar(group_elems, "uint"), Scalar(spatial, "uint"), Scalar(groups, "uint")),
        threads=(n * groups * group, 1, 1),
        group_size=(group, 1, 1),
        constants={"has_weight": weight is not None, "has_bias": bias is not None},
    )


def split_plan(x: TensorMeta, n_groups: int, group_elems: int, spatial: int, groups: int, blocks: int,
               weight: TensorMeta | None, bias: TensorMeta | None, eps: float) -> LaunchPlan:
    """Partial statistics per block into scratch, then every block merges its group's partials and normalises."""
    dtype = DTYPE_NAMES[x.dtype]
    slice_ = Scalar(slice_elements(x.dtype), "uint")
    grid = (n_groups * blocks * BLOCK_THREADS, 1, 1)
    apply = Dispatch(
        kernel=f"group_norm_apply_{dtype}",
        buffers=("x", "weight" if weight is not None else None, "bias" if bias is not None else None, "out",
                 "partials", Scalar(eps, "float"), Scalar(group_elems, "uint"), Scalar(spatial, "uint"),
                 Scalar(groups, "uint"), slice_, Scalar(blocks, "uint")),
        threads=grid, group_size=(BLOCK_THREADS, 1, 1))
    return LaunchPlan(
        kernel=f"group_norm_partials_{dtype}",
        buffers=("x", "partials", Scalar(group_elems, "uint"), slice_, Scalar(blocks, "uint")),
        threads=grid,
        group_size=(BLOCK_THREADS, 1, 1),
        constants={"has_weight": weight is not None, "has_bias": bias is not None},
        then=(apply,),
        scratch=(Scratch("partials", (n_groups * blocks, 4), torch.float32),),
    )


def launch_threads(n_groups: int, group_elems: int, dtype: torch.dtype) -> int:
    """Threads of the plan's largest dispatch."""
    blocks = split_blocks(n_groups, group_elems, dtype)
    if blocks > 1:
        return n_groups * blocks * BLOCK_THREADS
    return n_groups * one_block_threads(group_elems)


def validate(inputs) -> None:
    x, groups = inputs["x"], inputs["groups"]
    if x.dim() < 2:
        raise ValueError(f"x must have shape (N, C, *), got {tuple(x.shape)}")
    c = x.shape[1]
    if groups < 1 or c % groups:
        raise ValueError(f"groups must be a positive divisor of the {c} channels, got {groups}")
    for name in ("weight", "bias"):
        t = inputs[name]
        if t is not None and tuple(t.shape) != (c,):
            raise ValueError(f"{name} must have shape ({c},) to match x's channels, got {tuple(t.shape)}")
    check_eps(inputs["eps"])


def grid_fits_uint32(inputs) -> str | None:
    """the launch grid has 2^32 threads or more"""
    x, groups = inputs["x"], inputs["groups"]
    if x.numel() == 0:
        return None
    n, c = x.shape[:2]
    threads = launch_threads(n * groups, c // groups * math.prod(x.shape[2:]), x.dtype)
    return f"the launch needs {threads} threads, more than 32-bit indexing covers" if threads >= 2**32 else None


def examples(dtype: torch.dtype):
    gen = torch.Generator().manual_seed(4)

    def affine(c: int):
        return (torch.rand(c, generator=gen) + 0.5).to(dtype), torch.randn(c, generator=gen).to(dtype)

    def randn(*shape: int, scale: float = 1.0, shift: float = 0.0):
        return (torch.randn(*shape, generator=gen) * scale + shift).to(dtype)

    w6, b6 = affine(6)
    w4, b4 = affine(4)
    w32, b32 = affine(32)
    _, b8 = affine(8)
    w64, _ = affine(64)
    return [
        (randn(2, 6, 5, 7), 3, w6, b6, 1e-5),  # group of 2 channels x 35 positions = 70 elements
        (randn(1, 4, 33), 2, w4, None, 1e-5),  # 66 elements, one spatial dim
        (randn(3, 32), 8, w32, b32, 1e-5),  # (N, C): no spatial dims, 4 channels per group
        (randn(2, 32), 32, None, b32, 1e-5),  # one element per group: out = bias
        (randn(2, 8, 31), 1, None, None, 1e-6),  # one group (LayerNorm over C x HW)
        (randn(2, 4, 1, 5), 4, w4, b4, 1e-5),  # size-1 spatial dim, one channel per group
        (randn(1, 6, 3, 4, 5, scale=2.0, shift=3.0), 2, w6, b6, 1e-5),  # three spatial dims, mean far from 0
        (randn(1, 64, 8, 9), 4, w64, None, 1e-5),  # 1152 elements per group: 288 threads
        (randn(2, 8, 13, 47), 8, None, b8, 1e-5),  # 611 elements, a prime channel plane
        # 33124 elements per group: 16384 (fp32) or 32768 held in registers, the rest streamed and read twice.
        (randn(1, 4, 91, 91, scale=0.5, shift=-1.0), 1, w4, b4, 1e-5),
    ]


GROUP_NORM = KernelFamily(
    name="group_norm",
    source="group_norm.metal",
    schema="(Tensor x, int groups, Tensor? weight, Tensor? bias, float eps) -> Tensor",
    reference=reference,
    dtypes=FLOAT_DTYPES,
    outputs={"out": like("x")},
    plan=plan,
    validate=validate,
    validate_is_static=True,
    constraints=(fits_uint32("x"), grid_fits_uint32),
    description="GroupNorm over (N, C, *) inputs, optional per-channel weight and bias",
    fusions="mean, variance, normalise, weight and bias per (sample, group); one threadgroup per group where "
            "the groups fill the GPU (x read once where held in registers, the rest again from cache), else each "
            "group split over 16 KiB blocks (partials, then normalise: x read twice)",
    examples=examples,
)
FAMILIES = (GROUP_NORM,)
