"""Emulator throughput on this machine: run by hand (`python benches/emulator.py`), not part of the tests.

Prints
- elementwise lanes per second on the fiber-free fast path (16M elements; target >= 50M/s on 2 cores);
- barrier + simd_sum lane-steps per second through the fiber scheduler in 1024-thread groups (target >= 10M/s).
The figures for the reference machine are kept in docs/emulator.md.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from mpskernels.emulator import compile_source

SOURCE = """
#include <metal_stdlib>
using namespace metal;

kernel void axpb(const device float* x [[buffer(0)]], device float* y [[buffer(1)]],
                 constant float& a [[buffer(2)]], constant uint& n [[buffer(3)]],
                 uint i [[thread_position_in_grid]]) {
  if (i < n) y[i] = a * x[i] + 1.0f;
}

// Every step is one SIMD-group reduction and one threadgroup barrier for every lane.
kernel void barrier_steps(device float* out [[buffer(0)]], constant uint& steps [[buffer(1)]],
                          uint gid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]]) {
  float v = float(tid & 7);
  for (uint s = 0; s < steps; s++) {
    v = simd_sum(v) * 0.03125f;
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }
  if (tid == 0) out[gid] = v;
}
"""


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--elements", type=int, default=16 * 1024 * 1024)
    parser.add_argument("--groups", type=int, default=8)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    lib = compile_source(SOURCE, name="bench.metal")
    n = args.elements
    x, y = torch.randn(n), torch.empty(n)
    lib.axpb(x, y, 2.0, n, threads=n, group_size=256)  # warm-up: worker stacks, page faults
    t = best_of(args.repeats, lambda: lib.axpb(x, y, 2.0, n, threads=n, group_size=256))
    assert torch.allclose(y, 2 * x + 1)
    elementwise = n / t / 1e6

    out = torch.empty(args.groups)
    lib.barrier_steps(out, args.steps, threads=args.groups * 1024, group_size=1024)
    t = best_of(args.repeats, lambda: lib.barrier_steps(out, args.steps, threads=args.groups * 1024, group_size=1024))
    lane_steps = args.groups * 1024 * args.steps / t / 1e6

    cores = os.cpu_count()
    print(f"emulator on {cores} cores, fibers: {lib.fiber_implementation()}")
    print(f"elementwise (fast path, {n / 2**20:.0f}M lanes):          {elementwise:8.1f} M lanes/s   (target >= 50)")
    print(f"barrier + simd_sum ({args.groups} x 1024 threads, {args.steps} steps): {lane_steps:8.1f} M lane-steps/s "
          f"(target >= 10)")


if __name__ == "__main__":
    main()
