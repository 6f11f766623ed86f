"""The timing loop, driven by a fake device whose calls advance a fake clock (no Apple GPU here)."""

from __future__ import annotations

import pytest

from mpskernels.bench.timing import Timing, TimingOptions, time_interleaved


class FakeDevice:
    """Each variant takes a fixed time per call; its first call (compilation) takes far longer. Queued work only
    completes at synchronize(), as on a GPU, so a timer that skips synchronizing measures nothing."""

    def __init__(self, costs: dict[str, float], first_call: float = 5.0):
        self.now = 0.0
        self.costs, self.first_call = costs, first_call
        self.pending = 0.0
        self.calls: list[str] = []
        self.syncs = 0

    def clock(self) -> float:
        return self.now

    def synchronize(self) -> None:
        self.syncs += 1
        self.now += self.pending
        self.pending = 0.0

    def variant(self, name: str):
        def call():
            first = name not in self.calls
            self.calls.append(name)
            self.pending += self.first_call if first else self.costs[name]
        return call


def test_medians_exclude_warmup_and_compilation():
    dev = FakeDevice({"eager": 0.002, "candidate": 0.001})
    times = time_interleaved({n: dev.variant(n) for n in dev.costs}, dev.synchronize,
                             TimingOptions(warmup=2, min_runs=5, max_runs=5, budget_s=0), clock=dev.clock)
    assert times["eager"].median_ms == pytest.approx(2.0)
    assert times["candidate"].median_ms == pytest.approx(1.0)
    assert times["eager"].runs == times["candidate"].runs == 5
    assert times["eager"].max_ms == pytest.approx(2.0)  # the 5 s first call fell in the warm-up


def test_work_is_synchronized_before_the_clock_stops():
    dev = FakeDevice({"a": 0.003})
    times = time_interleaved({"a": dev.variant("a")}, dev.synchronize,
                             TimingOptions(warmup=1, min_runs=3, max_runs=3), clock=dev.clock)
    assert times["a"].median_ms == pytest.approx(3.0)  # asynchronous work counted: a sync closes each run
    assert dev.syncs >= 2 * 3


def test_variants_are_interleaved_and_rotated():
    dev = FakeDevice({"a": 0.001, "b": 0.001, "c": 0.001})
    time_interleaved({n: dev.variant(n) for n in "abc"}, dev.synchronize,
                     TimingOptions(warmup=1, min_runs=3, max_runs=3), clock=dev.clock)
    timed = dev.calls[3:]  # after one warm-up call each
    assert timed == list("abc" "bca" "cab")


def test_budget_stops_after_min_runs_and_max_runs_caps():
    dev = FakeDevice({"a": 0.5})
    times = time_interleaved({"a": dev.variant("a")}, dev.synchronize,
                             TimingOptions(warmup=1, min_runs=3, max_runs=100, budget_s=1.0), clock=dev.clock)
    assert times["a"].runs == 3  # 3 runs of 0.5 s pass the 1 s budget; min_runs still honoured
    dev = FakeDevice({"a": 1e-6})
    times = time_interleaved({"a": dev.variant("a")}, dev.synchronize,
                             TimingOptions(warmup=1, min_runs=3, max_runs=7, budget_s=10.0), clock=dev.clock)
    assert times["a"].runs == 7


def test_spread_and_quartiles():
    t = Timing.from_samples([0.001, 0.002, 0.003, 0.004, 0.100])
    assert t.median_ms == pytest.approx(3.0)
    assert (t.min_ms, t.max_ms) == (pytest.approx(1.0), pytest.approx(100.0))
    assert t.q1_ms == pytest.approx(2.0) and t.q3_ms == pytest.approx(4.0)
    assert t.spread == pytest.approx(2.0 / 3.0)
    assert Timing.from_samples([0.002]).spread == 0.0
    with pytest.raises(ValueError):
        Timing.from_samples([])


@pytest.mark.parametrize("kwargs", [{"warmup": 0}, {"min_runs": 0}, {"min_runs": 5, "max_runs": 4}])
def test_bad_timing_options(kwargs):
    with pytest.raises(ValueError):
        TimingOptions(**kwargs)
