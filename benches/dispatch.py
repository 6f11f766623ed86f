"""Host work an mpskernels op adds per launch, through both call routes (run by hand; issue 18's target).

Decode-sized tensors, where host work dominates, with the shapes already seen (the repeated-shape path). On a Mac
with MPS each op runs its real backend (metal, else metal-jit) and every batch is synchronised. Elsewhere the kernel
launch is replaced by a no-op backend, so a call's time is exactly what mpskernels does around a launch: dispatcher
entry, input checks, plan, output allocation, backend choice.

Columns, per op, in µs per call: the lowest of --repeats batches of --calls calls, the routes interleaved so that
load on a shared machine hits them alike. Without MPS the clock is this thread's CPU time (time.thread_time_ns):
on a machine shared with other work, wall time also counts the time other processes hold the core (on a quiet
machine the two agree; --wall uses wall time). On MPS it is wall time, the GPU synchronised per batch.
  torch.ops    torch.ops.mpskernels.<op>(...)   (the dispatcher: what graphs and export call)
  ops          mpskernels.ops.<op>(...)          (eager mode's direct entry point)
  alloc        torch.empty_like for each of the op's outputs: the part of the work any op must do
  native       the PyTorch op computing the same thing, where it is one op (silu, rms_norm, softmax)
  added        route - alloc: the host work mpskernels adds per launch. Target (issue 18): at most 3 µs.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

import mpskernels  # noqa: F401  (registers the ops)
from mpskernels import ops, runtime

try:
    from mpskernels import cxx_host
except ImportError:  # a tree from before the C++ host path (for before/after figures)
    try:
        from mpskernels import launch_key as cxx_host
    except ImportError:
        cxx_host = None

TARGET_US = 3.0


class NoLaunch:
    name = "no-launch"
    device_types = ("cpu",)

    def unavailable(self):
        return None

    def launch(self, family, plan, tensors):
        pass


def cases(size: int, device: str) -> dict[str, tuple[tuple, Callable, Callable | None]]:
    """op -> (arguments, allocation of its outputs, native PyTorch equivalent or None)."""
    x = torch.randn(1, size, device=device)
    residual = torch.randn(1, size, device=device)
    w = torch.rand(size, device=device)
    q, k = torch.randn(1, 32, 1, 64, device=device), torch.randn(1, 8, 1, 64, device=device)
    cos, sin = torch.randn(1, 1, 64, device=device), torch.randn(1, 1, 64, device=device)
    scores = torch.randn(1, 32, 1, 512, device=device)
    empty_like = torch.empty_like
    return {
        "silu": ((x,), lambda: empty_like(x), lambda: F.silu(x)),
        "rms_norm": ((x, w, 1e-6), lambda: empty_like(x), lambda: F.rms_norm(x, (size,), w, 1e-6)),
        "add_rms_norm": ((x, residual, w, 1e-6), lambda: (empty_like(x), empty_like(x)), None),
        "rope": ((q, k, cos, sin, None, 0, False), lambda: (empty_like(q), empty_like(k)), None),
        "softmax": ((scores, None, 1.0), lambda: empty_like(scores), lambda: torch.softmax(scores, -1)),
    }


def batch_us(fn: Callable, calls: int, sync: Callable, clock: Callable[[], int]) -> float:
    start = clock()
    for _ in range(calls):
        fn()
    sync()
    return (clock() - start) / calls / 1e3


def measure(fns: dict[str, Callable], calls: int, repeats: int, sync: Callable, clock) -> dict[str, float]:
    for fn in fns.values():  # warm: the first call with these shapes decides and caches
        batch_us(fn, max(calls // 10, 1), sync, clock)
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            samples[name].append(batch_us(fn, calls, sync, clock))
    return {name: min(s) for name, s in samples.items()}


@dataclass
class HostCost:
    """µs per call of one op: both routes, the allocation and the native op; `added_*` = route - alloc."""

    name: str
    dispatcher: float
    direct: float
    alloc: float
    native: float | None

    @property
    def added_dispatcher(self) -> float:
        return self.dispatcher - self.alloc

    @property
    def added_direct(self) -> float:
        return self.direct - self.alloc


def added_host_us(only: tuple[str, ...] = (), size: int = 2048, calls: int = 5000, repeats: int = 9,
                  wall: bool = False) -> tuple[list[HostCost], bool, str]:
    """(per-op costs, whether the C++ launch key was used, what the clock measured). Off MPS the launch is
    replaced by a no-op for the duration (and restored afterwards)."""
    on_mps = torch.backends.mps.is_available()
    device = "mps" if on_mps else "cpu"
    sync = torch.mps.synchronize if on_mps else (lambda: None)
    saved = runtime.AUTOMATIC.get("cpu")
    if not on_mps:
        runtime.BACKENDS["no-launch"] = NoLaunch()
        runtime.AUTOMATIC["cpu"] = ("no-launch",)
    try:
        ops.silu(torch.randn(4, device=device))  # the first call starts building the C++ host path ...
        cxx_key = cxx_host is not None and cxx_host.wait(300)  # ... which the measured calls use once built
        clock = time.perf_counter_ns if on_mps or wall else time.thread_time_ns
        costs = []
        for name, (arguments, alloc, native) in cases(size, device).items():
            if only and name not in only:
                continue
            registered, direct = getattr(torch.ops.mpskernels, name), getattr(ops, name)
            fns = {"torch.ops": lambda: registered(*arguments), "ops": lambda: direct(*arguments), "alloc": alloc}
            if native is not None:
                fns["native"] = native
            t = measure(fns, calls, repeats, sync, clock)
            costs.append(HostCost(name, t["torch.ops"], t["ops"], t["alloc"], t.get("native")))
    finally:
        if not on_mps:
            if saved is None:
                runtime.AUTOMATIC.pop("cpu", None)
            else:
                runtime.AUTOMATIC["cpu"] = saved
            runtime.BACKENDS.pop("no-launch", None)
    mode = "real kernels on MPS" if on_mps else "kernel launch replaced by a no-op (no MPS here)"
    clock_name = "wall time" if clock is time.perf_counter_ns else "thread CPU time"
    return costs, cxx_key, f"{mode}; µs of {clock_name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--size", type=int, default=2048, help="elements of silu's and the norms' row")
    parser.add_argument("--only", default="", help="comma-separated ops (default: all)")
    parser.add_argument("--wall", action="store_true", help="wall time, also without MPS")
    args = parser.parse_args()
    only = tuple(s for s in args.only.split(",") if s)
    costs, cxx_key, what = added_host_us(only, args.size, args.calls, args.repeats, args.wall)
    print(f"host work per call, {what}; lowest of {args.repeats} x {args.calls} calls; "
          f"host path (launch key, dispatcher kernels) in {'C++' if cxx_key else 'Python'}")
    print(f"{'op':<13} {'torch.ops':>9} {'ops':>6} {'alloc':>6} {'native':>7} {'added via torch.ops':>20} "
          f"{'added via ops':>14}")
    for c in costs:
        native_text = f"{c.native:7.2f}" if c.native is not None else f"{'-':>7}"
        print(f"{c.name:<13} {c.dispatcher:9.2f} {c.direct:6.2f} {c.alloc:6.2f} {native_text} "
              f"{c.added_dispatcher:20.2f} {c.added_direct:14.2f}")
    worst = max((max(c.added_dispatcher, c.added_direct) for c in costs), default=0.0)
    print(f"target: at most {TARGET_US:g} µs added per launch on either route; worst {worst:.2f} µs: "
          f"{'met' if worst <= TARGET_US else 'missed'}")


if __name__ == "__main__":
    main()
