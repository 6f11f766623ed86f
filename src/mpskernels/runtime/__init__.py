"""Kernel backends behind one interface, and the rules for choosing one.

    metal      the compiled Objective-C++ bridge (macOS, MPS tensors)
    metal-jit  torch.mps.compile_shader (macOS, MPS tensors; used when the bridge is not built)
    emulator   the MSL CPU emulator (CPU tensors)

Automatic choice by the tensors' device: MPS takes `metal`, else `metal-jit`; CPU takes the PyTorch reference
unless the emulator is asked for. MPSKERNELS_BACKEND (or `use_backend(...)`) forces one of the three, or
`reference`. A forced backend that cannot run raises; an automatic one falls back to the reference, logged once.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from functools import lru_cache
from typing import Iterator, Protocol

import torch

from ..kernels.spec import KernelFamily, LaunchPlan
from .emulator import EmulatorBackend
from .jit import JitBackend
from .metal import MetalBackend


class Backend(Protocol):
    name: str
    device_types: tuple[str, ...]

    def unavailable(self) -> str | None: ...

    def launch(self, family: KernelFamily, plan: LaunchPlan, tensors: dict[str, torch.Tensor]) -> None: ...


class BackendError(RuntimeError):
    """A backend that was asked for by name cannot run this call."""


BACKENDS: dict[str, Backend] = {b.name: b for b in (MetalBackend(), JitBackend(), EmulatorBackend())}
AUTOMATIC: dict[str, tuple[str, ...]] = {"mps": ("metal", "metal-jit")}
CHOICES = (*BACKENDS, "reference")

_forced: contextvars.ContextVar[str | None] = contextvars.ContextVar("mpskernels_backend", default=None)


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Force a backend (or "reference") for the calls made inside the block."""
    if name not in CHOICES:
        raise ValueError(f"unknown mpskernels backend {name!r}; choose one of {', '.join(CHOICES)}")
    token = _forced.set(name)
    try:
        yield
    finally:
        _forced.reset(token)


def requested_backend() -> str | None:
    name = _forced.get() or os.environ.get("MPSKERNELS_BACKEND") or None
    if name is not None and name not in CHOICES:
        raise BackendError(f"MPSKERNELS_BACKEND={name!r} is not a backend; choose one of {', '.join(CHOICES)}")
    return name


@lru_cache(maxsize=None)
def unavailable(name: str) -> str | None:
    """Why a backend cannot run on this machine (None when it can); checked once per process."""
    return BACKENDS[name].unavailable()


def choose_backend(device: torch.device) -> tuple[Backend | None, bool]:
    """(backend, explicitly requested); None means: run the PyTorch reference."""
    name = requested_backend()
    if name == "reference":
        return None, True
    if name is not None:
        backend = BACKENDS[name]
        if device.type not in backend.device_types:
            raise BackendError(f"the {name} backend runs on {'/'.join(backend.device_types)} tensors, got "
                               f"{device.type} tensors")
        reason = unavailable(name)
        if reason:
            raise BackendError(f"the {name} backend is unavailable: {reason}")
        return backend, True
    for candidate in AUTOMATIC.get(device.type, ()):
        if unavailable(candidate) is None:
            return BACKENDS[candidate], False
    return None, False


__all__ = ["BACKENDS", "Backend", "BackendError", "choose_backend", "requested_backend", "use_backend"]
