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


# os.environ.get costs ~2 us when the variable is unset (it raises and catches KeyError); its byte-level dict does
# not, and stays in step with os.environ on POSIX. This runs on every op call.
_environ_bytes = getattr(os.environ, "_data", None) if os.name == "posix" else None


def _env_backend() -> str | None:
    if _environ_bytes is None:
        return os.environ.get("MPSKERNELS_BACKEND")
    value = _environ_bytes.get(b"MPSKERNELS_BACKEND")
    return value.decode() if value is not None else None


def requested_backend() -> str | None:
    name = _forced.get() or _env_backend() or None
    if name is not None and name not in CHOICES:
        raise BackendError(f"MPSKERNELS_BACKEND={name!r} is not a backend; choose one of {', '.join(CHOICES)}")
    return name


@lru_cache(maxsize=None)
def unavailable(name: str) -> str | None:
    """Why a backend cannot run on this machine (None when it can); checked once per process."""
    return BACKENDS[name].unavailable()


_automatic_names: dict[tuple[str, tuple[str, ...]], str | None] = {}


def choose_backend(device: torch.device) -> tuple[Backend | None, bool]:
    """(backend, explicitly requested); None means: run the PyTorch reference."""
    name = requested_backend()
    if name is None:
        candidates = AUTOMATIC.get(device.type, ())
        key = (device.type, candidates)
        if key not in _automatic_names:
            _automatic_names[key] = next((c for c in candidates if unavailable(c) is None), None)
        chosen = _automatic_names[key]
        return (BACKENDS[chosen] if chosen else None), False
    if name == "reference":
        return None, True
    backend = BACKENDS[name]
    if device.type not in backend.device_types:
        raise BackendError(f"the {name} backend runs on {'/'.join(backend.device_types)} tensors, got "
                           f"{device.type} tensors")
    reason = unavailable(name)
    if reason:
        raise BackendError(f"the {name} backend is unavailable: {reason}")
    return backend, True


__all__ = ["BACKENDS", "Backend", "BackendError", "choose_backend", "requested_backend", "use_backend"]
