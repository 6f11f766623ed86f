"""A fake GPU for optimize()'s timing stage: a backend named "metal" (what a Mac runs) that takes CPU tensors, runs
every plan on the MSL emulator (real results and launch counts) and charges a fake clock per kernel launch. As on a
GPU, queued work completes only at synchronize(), so a timer that skips synchronizing measures nothing."""

from __future__ import annotations

import itertools

import pytest
import torch.nn.functional as F
from torch import nn

from mpskernels import runtime
from mpskernels.bench.timing import TimingOptions
from mpskernels.optimize import cache, timing
from mpskernels.runtime.emulator import EmulatorBackend


class FakeGPU:
    name = "metal"
    device_types = ("cpu",)

    def __init__(self) -> None:
        self.now = self.pending = 0.0
        self.costs: dict[str, itertools.cycle] = {}
        self.syncs = 0
        self.emulator = EmulatorBackend()

    def set_cost(self, kernel: str, *seconds: float) -> None:
        """Each launch of `kernel` costs the next of `seconds` (cycled: several values make noise)."""
        self.costs[kernel] = itertools.cycle(seconds)

    def unavailable(self) -> str | None:
        return None

    def launch(self, family, plan, tensors) -> None:
        self.charge(next(self.costs[family.name]))
        self.emulator.launch(family, plan, tensors)

    def charge(self, seconds: float) -> None:
        self.pending += seconds

    def synchronize(self) -> None:
        self.syncs += 1
        self.now += self.pending
        self.pending = 0.0

    def timing_clock(self):
        return self.synchronize, lambda: self.now


class CostlySiLU(nn.SiLU):
    """nn.SiLU (swapped by type) whose own forward costs the fake device `seconds` per call (cycled)."""

    def __init__(self, device: FakeGPU, *seconds: float) -> None:
        super().__init__()
        self.device, self.seconds = device, itertools.cycle(seconds)

    def forward(self, x):
        self.device.charge(next(self.seconds))
        return F.silu(x)


@pytest.fixture
def gpu(monkeypatch, tmp_path):
    """The fake GPU as the automatic backend for CPU tensors; a fresh decision cache; short timing runs."""
    fake = FakeGPU()
    runtime.unavailable.cache_clear()
    monkeypatch.setitem(runtime.BACKENDS, "metal", fake)
    monkeypatch.setitem(runtime.AUTOMATIC, "cpu", ("metal",))
    monkeypatch.setattr(cache, "default_path", lambda: tmp_path / "decisions.json")
    monkeypatch.setattr(timing, "OPTIONS", TimingOptions(warmup=1, min_runs=6, max_runs=6, budget_s=0.0))
    yield fake
    runtime.unavailable.cache_clear()
