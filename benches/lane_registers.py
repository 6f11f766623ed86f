"""Registers and local memory of every shipped kernel on the NVIDIA lane (sm_90, from ptxas; no GPU needed).

    python benches/lane_registers.py [--sources rms_norm.metal,...] [--all] [--constant decode_short_tiles]
    python benches/lane_registers.py --loops attention.metal:attention_decode_split_d128_float32 [--constant has_mask]
    python benches/lane_registers.py --code-size [--sources layer_norm.metal] [--constant has_weight]

One line per kernel: its registers per thread and the worst local-memory frame and spill over the file's
function-constant specialisations, or with --constant those of the one specialisation with the constants named true
and the others false (the worst can hide the specialisation the lane times: the split decode kernels at D128
read fp16 146 and bf16 148 registers, where the no-mask short-tile kernels the lane timed take 142 and 128).
Kernels that keep everything in registers are left out unless --all.
Why it matters, and what it says about Apple GPUs: src/mpskernels/cuda/registers.py.
--loops: one kernel's loops in its machine code with their global loads by width (src/mpskernels/cuda/sass.py:
what a loop keeps in flight), under the function constants named by --constant (the others false).
--code-size: each kernel's machine code in instructions, the largest over the specialisations or the one named by
--constant (src/mpskernels/cuda/sass.py, kernel_code_sizes: why the size of a kernel's code matters).
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor

from mpskernels._paths import metal_dir
from mpskernels.cuda.registers import kernel_resources, named_specialisation, specialisations
from mpskernels.cuda.sass import kernel_code_sizes, kernel_loops


def register_figures(source: str, constants: tuple) -> dict[str, tuple[int, ...]]:
    """kernel -> (registers, stack bytes, spill bytes) under one specialisation."""
    return {r.kernel: (r.registers, r.stack_bytes, r.spill_bytes) for r in kernel_resources(source, constants)}


def code_size_figures(source: str, constants: tuple) -> dict[str, tuple[int, ...]]:
    """kernel -> (machine-code instructions,) under one specialisation."""
    return {kernel: (n,) for kernel, n in kernel_code_sizes(source, constants).items()}


def per_kernel(source: str, true_constants: list[str], figures) -> dict[str, tuple[int, ...]]:
    """kernel -> figures(source, specialisation) under the specialisation with true_constants set (the others
    clear), or without any named, each figure's maximum over all the specialisations."""
    if true_constants:
        return figures(source, named_specialisation(source, true_constants))
    largest: dict[str, tuple[int, ...]] = {}
    with ThreadPoolExecutor() as pool:
        for table in pool.map(lambda c: figures(source, c), specialisations(source)):
            for kernel, values in table.items():
                largest[kernel] = tuple(map(max, largest.get(kernel, values), values))
    return largest


def print_loops(target: str, true_constants: list[str]) -> int:
    source, kernel = target.split(":")
    for loop in kernel_loops(source, kernel, named_specialisation(source, true_constants)):
        print(loop.describe())
    return 0


def chosen_sources(opts: argparse.Namespace) -> list[str]:
    return opts.sources.split(",") if opts.sources else sorted(p.name for p in metal_dir().glob("*.metal"))


def print_code_sizes(opts: argparse.Namespace) -> int:
    for source in chosen_sources(opts):
        for kernel, (n,) in sorted(per_kernel(source, opts.constant, code_size_figures).items()):
            print(f"{source:20s} {kernel:48s} instructions {n:6d}")
    return 0


def print_table(opts: argparse.Namespace) -> int:
    sources = chosen_sources(opts)
    in_memory = 0
    for source in sources:
        table = per_kernel(source, opts.constant, register_figures)
        for kernel, (registers, stack, spill) in sorted(table.items()):
            if stack or spill:
                in_memory += 1
            if stack or spill or opts.all:
                print(f"{source:20s} {kernel:48s} registers {registers:4d}  stack {stack:4d} B  spill {spill:4d} B")
    print(f"{in_memory} kernels keep values in local memory")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", help="comma-separated .metal files (default: every shipped one)")
    parser.add_argument("--all", action="store_true", help="also list kernels held entirely in registers")
    parser.add_argument("--loops", metavar="SOURCE:KERNEL", help="one kernel's loops and their loads instead")
    parser.add_argument("--code-size", action="store_true", help="each kernel's machine code in instructions instead")
    parser.add_argument("--constant", action="append", default=[], help="a boolean function constant set true")
    opts = parser.parse_args()
    try:
        if opts.loops:
            return print_loops(opts.loops, opts.constant)
        return print_code_sizes(opts) if opts.code_size else print_table(opts)
    except ValueError as error:  # a --constant the file does not declare
        parser.error(str(error))


if __name__ == "__main__":
    sys.exit(main())
