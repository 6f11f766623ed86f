"""The speed rule for the compile backend: before it rewrites an aten call into an mpskernels op, it asks whether the
kernel is faster there, from the decision cache optimize() fills (or by timing the two on random inputs of the
call's dtypes and shapes, and filling the cache). Only where a GPU backend runs the kernels, as for optimize()'s
timing="auto"; elsewhere there is no gate and the backend rewrites as it always did."""

from __future__ import annotations

from typing import Any, Callable

import torch

from ..runtime import BackendError, choose_backend
from . import cache as decision_cache


class SpeedGate:
    def __init__(self, backend: Any) -> None:
        from .timing import device_clock

        self.backend = backend
        self.machine = decision_cache.machine(backend.name)
        self.cache = decision_cache.DecisionCache()
        self.synchronize, self.clock = device_clock(backend)

    def keep(self, kernel: str, replaced: str, arguments: Any, before: Callable[[], Any],
             after: Callable[[], Any]) -> bool:
        """Whether `after` (the kernel) beats `before` (PyTorch) on calls described by `arguments`."""
        from .timing import OPTIONS, Decision, decide
        from ..bench.timing import time_interleaved

        key = decision_cache.cache_key(self.machine, kernel, replaced, decision_cache.describe(arguments))
        found = self.cache.get(key)
        decision = Decision.from_dict(found) if found is not None else None
        if decision is None:
            with torch.no_grad():
                times = time_interleaved({"before": before, "after": after}, self.synchronize, OPTIONS, self.clock)
            decision = decide(times["before"], times["after"])
            self.cache.put(key, decision.as_dict())
        return decision.keep

    def save(self) -> None:
        self.cache.save()


def speed_gate(example_inputs: list) -> SpeedGate | None:
    """The gate for a graph whose inputs live where these do, or None where nothing is timed."""
    from .timing import GPU_BACKENDS

    device = next((t.device for t in example_inputs if isinstance(t, torch.Tensor)), None)
    if device is None:
        return None
    try:
        backend, _ = choose_backend(device)
    except BackendError:
        return None
    return SpeedGate(backend) if backend is not None and backend.name in GPU_BACKENDS else None
