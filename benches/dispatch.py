"""Per-call host overhead of an mpskernels op against a native torch op of the same size (run by hand).

Measures small tensors, where host work dominates. On a Mac with MPS the op runs its real backend (metal, else
metal-jit) and both sides are synchronised at the end of each batch. Elsewhere the kernel launch is replaced by a
no-op backend, so the figure is exactly what mpskernels adds around a launch: dispatcher entry, input checks,
plan, output allocation and backend selection. Target: at most 2x the native op. Two mpskernels columns:
through torch.ops.mpskernels (the dispatcher) and through mpskernels.ops (direct in eager mode).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import mpskernels  # noqa: F401  (registers the ops)
from mpskernels import ops, runtime


class NoLaunch:
    name = "no-launch"
    device_types = ("cpu",)

    def unavailable(self):
        return None

    def launch(self, family, plan, tensors):
        pass


def per_call_us(fn, calls: int, repeats: int, sync) -> list[float]:
    for _ in range(calls // 10):
        fn()
    sync()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        sync()
        samples.append((time.perf_counter() - start) / calls * 1e6)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--size", type=int, default=1024, help="elements (rms_norm: one row of this many)")
    args = parser.parse_args()

    on_mps = torch.backends.mps.is_available()
    device = "mps" if on_mps else "cpu"
    sync = torch.mps.synchronize if on_mps else (lambda: None)
    if not on_mps:
        runtime.BACKENDS["no-launch"] = NoLaunch()
        runtime.AUTOMATIC["cpu"] = ("no-launch",)
    x = torch.randn(1, args.size, device=device)
    w = torch.rand(args.size, device=device)
    calls = {
        "silu": (lambda: torch.ops.mpskernels.silu(x), lambda: ops.silu(x), lambda: torch.nn.functional.silu(x)),
        "rms_norm": (lambda: torch.ops.mpskernels.rms_norm(x, w, 1e-6), lambda: ops.rms_norm(x, w, 1e-6),
                     lambda: torch.nn.functional.rms_norm(x, (args.size,), w, 1e-6)),
    }
    mode = "real kernels on MPS" if on_mps else "kernel launch replaced by a no-op (no MPS here)"
    print(f"per-call host overhead, {args.size} elements, {mode}; median of {args.repeats} x {args.calls} calls")
    print(f"{'op':<10} {'torch.ops us':>13} {'ratio':>6} {'mpskernels.ops us':>18} {'ratio':>6} {'native us':>10}")
    for name, (via_dispatcher, direct, native) in calls.items():
        # Interleave the three so drift hits them alike.
        samples = {via_dispatcher: [], direct: [], native: []}
        for _ in range(args.repeats):
            for fn, s in samples.items():
                s += per_call_us(fn, args.calls, 1, sync)
        a, b, n = (statistics.median(s) for s in samples.values())
        print(f"{name:<10} {a:13.2f} {a / n:5.2f}x {b:18.2f} {b / n:5.2f}x {n:10.2f}")


if __name__ == "__main__":
    main()
