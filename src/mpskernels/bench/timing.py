"""Timing by the project's rules (shared/notes/verification.md): synchronize around every timed call, warm up first
(so compilation and pipeline creation fall outside the timed runs), interleave the variants so drift (clocks,
heat, other load) hits them all alike, and report the median with its spread.

The clock and the synchronize function are parameters: on a Mac they are `time.perf_counter` and
`torch.mps.synchronize`; the tests drive the same loop with a fake device whose calls advance a fake clock.
A time is wall time from one synchronization to the next: the launch overhead on the host counts, because the user
pays it too (it is most of what a small op costs on MPS).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping


@dataclass(frozen=True)
class TimingOptions:
    warmup: int = 5  # untimed calls of each variant first: compilation, pipeline creation, caches
    min_runs: int = 10  # timed calls of each variant, at least ...
    max_runs: int = 200  # ... and at most
    budget_s: float = 2.0  # stop after min_runs once the timed loop has run this long (all variants together)

    def __post_init__(self) -> None:
        if self.warmup < 1:
            raise ValueError("timing needs at least one warm-up call (it takes the compilation)")
        if not 1 <= self.min_runs <= self.max_runs:
            raise ValueError(f"timing runs: need 1 <= min_runs <= max_runs, got {self.min_runs} and {self.max_runs}")


@dataclass(frozen=True)
class Timing:
    """One variant's timed runs, in milliseconds."""

    median_ms: float
    q1_ms: float
    q3_ms: float
    min_ms: float
    max_ms: float
    runs: int

    @classmethod
    def from_samples(cls, seconds: list[float]) -> "Timing":
        if not seconds:
            raise ValueError("no timed runs")
        ms = sorted(s * 1e3 for s in seconds)
        if len(ms) >= 2:
            q1, _, q3 = statistics.quantiles(ms, n=4, method="inclusive")
        else:
            q1 = q3 = ms[0]
        return cls(statistics.median(ms), q1, q3, ms[0], ms[-1], len(ms))

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median."""
        return (self.q3_ms - self.q1_ms) / self.median_ms if self.median_ms > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"median_ms": self.median_ms, "q1_ms": self.q1_ms, "q3_ms": self.q3_ms, "min_ms": self.min_ms,
                "max_ms": self.max_ms, "runs": self.runs, "spread": self.spread}

    def __str__(self) -> str:
        return f"{self.median_ms:.4g} ms (IQR {self.spread:.0%}, {self.runs} runs)"


def time_interleaved(variants: Mapping[str, Callable[[], Any]], synchronize: Callable[[], None],
                     options: TimingOptions = TimingOptions(),
                     clock: Callable[[], float] = time.perf_counter) -> dict[str, Timing]:
    """Times each variant (a no-argument call that launches the work) and returns its Timing by name.

    Round i runs every variant once, starting from variant i mod n, so no variant always goes first (or last)."""
    names = list(variants)
    if not names:
        return {}
    for _ in range(options.warmup):
        for name in names:
            variants[name]()
    synchronize()
    samples: dict[str, list[float]] = {name: [] for name in names}
    started = clock()
    for i in range(options.max_runs):
        k = i % len(names)
        for name in names[k:] + names[:k]:
            synchronize()
            t0 = clock()
            variants[name]()
            synchronize()
            samples[name].append(clock() - t0)
        if i + 1 >= options.min_runs and clock() - started >= options.budget_s:
            break
    return {name: Timing.from_samples(s) for name, s in samples.items()}
