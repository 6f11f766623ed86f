"""How the NVIDIA lane's benches time a launch on the GPU (benches/nvidia_lane.py, benches/anchor_lane.py)."""

from __future__ import annotations

import statistics
from typing import Any, Callable

import torch


def _events() -> tuple[torch.cuda.Event, torch.cuda.Event]:
    return torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)


def median_us(fn: Callable[[], Any], batches: int = 7, warmup: int = 0, batch_ms: float = 2.0,
              max_batch: int = 20) -> float:
    """Median over batches of back-to-back calls (batches of about `batch_ms`, 1 to `max_batch` calls), per call,
    by CUDA events: the GPU stays busy within a batch, so host launch overhead is hidden for kernels longer than
    it."""
    for _ in range(warmup):
        fn()
    start, end = _events()
    start.record()
    fn()
    end.record()
    end.synchronize()
    batch = max(1, min(max_batch, int(batch_ms / max(start.elapsed_time(end), 1e-3))))
    times = []
    for _ in range(batches):
        start, end = _events()
        start.record()
        for _ in range(batch):
            fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1000 / batch)
    return statistics.median(times)
