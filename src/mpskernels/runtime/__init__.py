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
from typing import Any, Iterator, Protocol

import torch

from ..kernels.spec import KernelFamily, LaunchPlan
from .emulator import EmulatorBackend
from .jit import JitBackend
from .metal import MetalBackend


class Backend(Protocol):
    name: str
    device_types: tuple[str, ...]

    def unavailable(self) -> str | None: ...

    # `tensors` maps the op's argument and output names to their values (scalars and None included);
    # the plan's buffers name the ones to bind.
    def launch(self, family: KernelFamily, plan: LaunchPlan, tensors: dict[str, Any]) -> None: ...


class BackendError(RuntimeError):
    """A backend that was asked for by name cannot run this call."""


class _Table(dict):
    """A dict whose every change forgets the cached backend choices (tests and benchmarks edit these tables). Every
    mutating method is listed: dict's own pop, update and the rest bypass __setitem__ and __delitem__, and a choice
    cached while a table was edited would outlive the edit (a benchmark's no-launch backend once stayed the CPU
    choice for the rest of the process, and later op calls returned outputs no kernel wrote)."""


def _forgetting_choices(name: str):
    """dict's method `name`, clearing the cached choices first."""
    method = getattr(dict, name)

    def edit(self, *args, **kwargs):
        _choices.clear()
        return method(self, *args, **kwargs)

    edit.__name__ = name
    return edit


for _name in ("__setitem__", "__delitem__", "__ior__", "pop", "popitem", "clear", "update", "setdefault"):
    setattr(_Table, _name, _forgetting_choices(_name))


# device -> the automatic choice (backend or None, False). Keyed by the torch.device object itself: reading
# device.type costs close to a microsecond, and this runs on every op call.
_choices: dict[torch.device, tuple["Backend | None", bool]] = {}

BACKENDS: dict[str, Backend] = _Table({b.name: b for b in (MetalBackend(), JitBackend(), EmulatorBackend())})
AUTOMATIC: dict[str, tuple[str, ...]] = _Table({"mps": ("metal", "metal-jit")})
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
_ENV_KEY = b"MPSKERNELS_BACKEND"


def _env_backend() -> str | None:
    if _environ_bytes is None:
        return os.environ.get("MPSKERNELS_BACKEND")
    value = _environ_bytes.get(_ENV_KEY)
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


def choose_backend(device: torch.device) -> tuple[Backend | None, bool]:
    """(backend, explicitly requested); None means: run the PyTorch reference."""
    if _forced.get() is None and _environ_bytes is not None and not _environ_bytes.get(_ENV_KEY):
        chosen = _choices.get(device)  # the automatic choice, in three lookups: this runs on every op call
        if chosen is not None:
            return chosen
    name = requested_backend()
    if name is not None:
        return _choose(name, device)  # asked for by name: checked every time (raises if it cannot run)
    chosen = _choices.get(device)
    if chosen is None:
        chosen = _choices[device] = _choose(None, device)
    return chosen


def _choose(name: str | None, device: torch.device) -> tuple[Backend | None, bool]:
    if name is None:
        candidates = AUTOMATIC.get(device.type, ())
        automatic = next((c for c in candidates if unavailable(c) is None), None)
        return (BACKENDS[automatic] if automatic else None), False
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
