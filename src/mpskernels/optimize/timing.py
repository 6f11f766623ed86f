"""Stage 4, time: a swap is kept only if it is faster than the module it replaces, on the inputs that module really
received in the example call, by a margin above the measured noise. Timed with the bench harness's rules
(mpskernels.bench.timing: synchronise around every call, warm up, interleave the two, median of the runs).

Where timing applies (OptimizeConfig.timing): "auto" where a GPU backend runs the kernels (a PyTorch reference or
the CPU emulator is never faster than PyTorch's own op, and timing it says nothing about a Mac); "always" on any
kernel backend, ignoring cached decisions; "off" never. Decisions are cached (cache.py)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch

from ..bench.timing import Timing, TimingOptions, time_interleaved
from . import cache as decision_cache
from .check import call_replacement
from .plan import Swap
from .progress import Progress
from .report import ROLLED_BACK, Report, ReportEntry, format_us
from .routes import copy_arguments

GPU_BACKENDS = ("metal", "metal-jit")
OPTIONS = TimingOptions(warmup=3, min_runs=10, max_runs=100, budget_s=0.25)  # per swap
MIN_GAIN = 0.03  # a swap must save at least 3%, and more than the noise, to be kept


@dataclass(frozen=True)
class Decision:
    keep: bool
    before_us: float
    after_us: float
    reason: str
    cached: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "cached"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Decision | None":
        try:
            return cls(bool(data["keep"]), float(data["before_us"]), float(data["after_us"]), str(data["reason"]),
                       cached=True)
        except (KeyError, TypeError, ValueError):  # an entry written by something else: time again
            return None


def decide(before: Timing, after: Timing) -> Decision:
    """Keep the swap when its median beats the original's by more than MIN_GAIN and more than the noise: half the
    interquartile range of each, relative to its median."""
    b, a = before.median_ms * 1e3, after.median_ms * 1e3
    noise = (before.spread + after.spread) / 2
    gain = 1 - a / b if b > 0 else 0.0
    if a >= b:
        return Decision(False, b, a, f"slower: {format_us(a)} vs {format_us(b)}")
    if gain <= max(MIN_GAIN, noise):
        return Decision(False, b, a, f"not faster beyond the noise: {format_us(a)} vs {format_us(b)} "
                                     f"({gain:.0%} faster, noise {noise:.0%}, margin {max(MIN_GAIN, noise):.0%})")
    return Decision(True, b, a, f"faster: {format_us(a)} vs {format_us(b)} ({b / a:.2f}x)")


def timing_mode(setting: str, backend: str) -> tuple[bool, str]:
    """(time the swaps?, the report's line on timing)."""
    if setting == "off":
        return False, "not timed: timing off (every correct swap kept)"
    if setting == "auto" and backend not in GPU_BACKENDS:
        return False, f"not timed: {backend}" + (" (timing=\"auto\" times on a GPU backend only)")
    return True, f"timed on {backend}" + (" (cache ignored and refreshed)" if setting == "always" else "")


def device_clock(backend: Any) -> tuple[Callable[[], None], Callable[[], float]]:
    """(synchronize, clock) for timing calls that run on this backend. A backend may bring its own (the tests'
    fake device does); MPS work is asynchronous, so its calls are closed by torch.mps.synchronize."""
    own = getattr(backend, "timing_clock", None)
    if own is not None:
        return own()
    if "mps" in getattr(backend, "device_types", ()):
        return torch.mps.synchronize, time.perf_counter
    return (lambda: None), time.perf_counter


def time_swaps(swaps: list[Swap], backend: Any, refresh: bool, cache: decision_cache.DecisionCache,
               progress: Progress, report: Report) -> list[Swap]:
    """The swaps that are faster (or could not be timed: no example call); slower ones reported as rolled back."""
    synchronize, clock = device_clock(backend)
    machine = decision_cache.machine(backend.name)
    kept = []
    progress.start("timing swaps", len(swaps))
    for swap in swaps:
        progress.step(swap.name or "(model)")
        if swap.call is None or swap.call.args is None:
            swap.timing_note = "not timed: no example call"
            kept.append(swap)
            continue
        kernel = "@".join(filter(None, (swap.replacement.kernel, swap.replacement.version)))
        key = decision_cache.cache_key(machine, kernel, type(swap.module).__qualname__,
                                       decision_cache.signature(swap.module, swap.call.args, swap.call.kwargs))
        found = None if refresh else cache.get(key)
        decision = Decision.from_dict(found) if found is not None else None
        if decision is None:
            try:
                decision = decide(*measure(swap, synchronize, clock))
            except Exception as e:  # the timing run failed (e.g. out of memory): keep the original
                report.add(rolled_back(swap, f"timing failed ({type(e).__name__}: {e}); original kept"))
                continue
            cache.put(key, decision.as_dict())
        swap.timing = decision
        if decision.keep:
            kept.append(swap)
        else:
            report.add(rolled_back(swap, decision.reason + (" (cached decision)" if decision.cached else "")))
    progress.close()
    cache.save()
    return kept


def rolled_back(swap: Swap, reason: str) -> ReportEntry:
    decision = swap.timing
    return ReportEntry(swap.name, swap.module_type, ROLLED_BACK, swap.replacement.kernel, swap.replacement.matched_by,
                       reason, swap.max_abs, backend=swap.backend, launches=swap.launches,
                       before_us=decision.before_us if decision else None,
                       after_us=decision.after_us if decision else None)


@torch.no_grad()
def measure(swap: Swap, synchronize: Callable[[], None], clock: Callable[[], float]) -> tuple[Timing, Timing]:
    """(original, swap) timings on the module's example call."""
    args, kwargs = swap.call.args, swap.call.kwargs
    if swap.fusion is not None:
        first, second, fused = swap.module.forward, swap.partner.forward, swap.fusion.forward
        variants = {"before": lambda: second(first(args[0])), "after": lambda: fused(args[0])}
    elif stateful(args, kwargs):
        # The call updates an object it is given (a KV cache grows): every run takes a fresh copy, and the copy's
        # own time, timed alongside, is taken off both.
        module, replacement = swap.module, swap.replacement
        variants = {"before": lambda: module.forward(*copy_arguments(args), **copy_arguments(kwargs)),
                    "after": lambda: call_replacement(module, replacement, *copy_arguments((args, kwargs))),
                    "copy": lambda: copy_arguments((args, kwargs))}
    else:
        module, replacement = swap.module, swap.replacement
        variants = {"before": lambda: module.forward(*args, **kwargs),
                    "after": lambda: call_replacement(module, replacement, args, kwargs)}
    times = time_interleaved(variants, synchronize, OPTIONS, clock)
    if "copy" in times:
        copy_ms = times["copy"].median_ms
        times = {n: _less(times[n], copy_ms) for n in ("before", "after")}
    return times["before"], times["after"]


def _less(t: Timing, ms: float) -> Timing:
    return Timing(max(t.median_ms - ms, 0.0), max(t.q1_ms - ms, 0.0), max(t.q3_ms - ms, 0.0),
                  max(t.min_ms - ms, 0.0), max(t.max_ms - ms, 0.0), t.runs)


def stateful(args: tuple, kwargs: dict) -> bool:
    """The call holds an object besides tensors, modules and plain values (which the module may update)."""
    def plain(v: Any) -> bool:
        if isinstance(v, (tuple, list)):
            return all(plain(x) for x in v)
        if isinstance(v, dict):
            return all(plain(x) for x in v.values())
        return v is None or isinstance(v, (torch.Tensor, torch.nn.Module, bool, int, float, str, torch.dtype))
    return not plain(args) or not plain(kwargs)
