"""LaunchPlan dispatch -> CUDA launches: grid regions, argument words, dynamic shared memory. Pure: no GPU needed.

`plan_launch` takes one dispatch: a LaunchPlan (its first dispatch) or a Dispatch from `plan.dispatches`; a plan
of several dispatches is launched one dispatch after the other on one stream (runner.launcher).

Metal's dispatchThreads runs a grid that need not be a multiple of the threadgroup size; the threadgroups at the
far edge are smaller, and their threads_per_threadgroup says so. CUDA blocks all have one size, so a plan is
launched as up to 8 regions (full or edge, per dimension), each with the blockDim Metal would give its
threadgroups and the position of its first threadgroup. No thread outside the grid exists, so barriers and SIMD
collectives see exactly the threads Metal would run. Where the entry's threads never meet (no threadgroup memory,
barrier or SIMD collective: CudaEntry.independent_threads), the grid is one launch of whole blocks and the padding
threads return at once, as Metal runs it in one dispatch: separate launches would charge the lane's timings a
launch that no Mac pays (a 2-D element-wise grid with a ragged row took twice its single launch's time).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Mapping

from ..kernels.spec import Dispatch, LaunchPlan, Scalar
from ..runtime.metal_source import pack_scalar
from .translate import CudaEntry

MAX_BLOCK_THREADS = 1024
MAX_GRID = (2**31 - 1, 65535, 65535)
THREADGROUP_ALIGN = 16


@dataclass(frozen=True)
class Region:
    blocks: tuple[int, int, int]  # CUDA grid (in blocks)
    block: tuple[int, int, int]  # CUDA blockDim: the threadgroup size of this region
    offset: tuple[int, int, int]  # threadgroup position of the region's first block


@dataclass(frozen=True)
class CudaLaunch:
    symbol: str
    regions: tuple[Region, ...]
    words: tuple[int, ...]  # one per [[buffer(i)]]: a device pointer, or a scalar's bytes (little-endian)
    inline_mask: int  # bit i: word i holds the scalar itself
    threadgroup_offsets: tuple[int, ...]  # byte offset of each [[threadgroup(i)]] in dynamic shared memory
    shared_bytes: int  # dynamic shared memory per block
    threads: tuple[int, int, int]
    group_size: tuple[int, int, int]

    def arguments(self, region: Region) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(64-bit words, 32-bit values) in the entry's parameter order, for one region."""
        small = (*self.threadgroup_offsets, self.inline_mask, *self.threads, *self.group_size, *region.offset)
        return self.words, small


def regions(threads: tuple[int, int, int], group: tuple[int, int, int], one_launch: bool = False
            ) -> tuple[Region, ...]:
    """The full-size and edge regions of a dispatchThreads grid; with `one_launch` (an entry whose threads never
    meet: CudaEntry.independent_threads), one region covering it: a dimension smaller than its threadgroup is one
    block of its own size, as Metal's lone edge threadgroup is; the others take whole blocks, padding included."""
    if one_launch and min(threads) > 0:
        block = tuple(min(n, g) for n, g in zip(threads, group))
        return (Region(tuple(-(-n // b) for n, b in zip(threads, block)), block, (0, 0, 0)),)
    per_dim = []
    for n, g in zip(threads, group):
        parts = []
        full, rest = divmod(n, g)
        if full:
            parts.append((full, g, 0))
        if rest:
            parts.append((1, rest, full))
        per_dim.append(parts)
    out = []
    for combo in itertools.product(*per_dim):
        out.append(Region(tuple(c[0] for c in combo), tuple(c[1] for c in combo), tuple(c[2] for c in combo)))
    return tuple(out)


def scalar_word(s: Scalar) -> int:
    """A scalar's MSL bytes, as the low bytes of a 64-bit word (the kernel reads them through a T&)."""
    return int.from_bytes(pack_scalar(s).ljust(8, b"\0"), "little")


def check_geometry(entry: CudaEntry, plan: LaunchPlan | Dispatch) -> None:
    threads, group = tuple(plan.threads), tuple(plan.group_size)
    if len(threads) != 3 or len(group) != 3 or min(group) < 1 or min(threads) < 0:
        raise ValueError(f"{plan.kernel}: bad dispatch threads={threads} group_size={group}")
    per_group = group[0] * group[1] * group[2]
    if per_group > min(MAX_BLOCK_THREADS, entry.max_threads):
        raise ValueError(f"{plan.kernel}: {per_group} threads per threadgroup, more than the kernel allows "
                         f"({min(MAX_BLOCK_THREADS, entry.max_threads)})")
    for d, (n, g, limit) in enumerate(zip(threads, group, MAX_GRID)):
        if -(-n // g) > limit:
            raise ValueError(f"{plan.kernel}: {-(-n // g)} threadgroups in dimension {d}, more than CUDA's {limit}")


def plan_launch(entry: CudaEntry, plan: LaunchPlan | Dispatch, pointers: Mapping[str, int], tensors: Mapping[str, Any] = {}
                ) -> CudaLaunch:
    """The launch of `plan` through `entry`; `pointers` maps the plan's buffer names to device addresses."""
    check_geometry(entry, plan)
    words = [0] * entry.buffer_slots
    inline_mask = 0
    if len(plan.buffers) > entry.buffer_slots:
        raise ValueError(f"{plan.kernel}: the plan binds {len(plan.buffers)} buffers, the kernel has "
                         f"{entry.buffer_slots} slots")
    for i, b in enumerate(plan.buffers):
        if isinstance(b, Scalar):
            if i not in entry.inline_slots:
                raise ValueError(f"{plan.kernel}: buffer {i} gets a scalar, but the kernel does not declare it "
                                 f"`constant T&` (the CUDA lane passes scalars by value to those only)")
            words[i] = scalar_word(b)
            inline_mask |= 1 << i
        elif isinstance(b, str):
            if b not in pointers:
                raise KeyError(f"{plan.kernel}: buffer {i} names '{b}', which the call does not have")
            words[i] = pointers[b]
        # None: a slot switched off by a function constant stays a null pointer
    offsets = []
    total = 0
    for i in range(entry.threadgroup_slots):
        offsets.append(total)
        size = int(plan.threadgroup_memory.get(i, 0))
        total += -(-size // THREADGROUP_ALIGN) * THREADGROUP_ALIGN
    grid = regions(tuple(plan.threads), tuple(plan.group_size), entry.independent_threads)
    return CudaLaunch(entry.symbol, grid, tuple(words), inline_mask,
                      tuple(offsets), total, tuple(plan.threads), tuple(plan.group_size))
