"""The `metal-jit` backend: torch.mps.compile_shader, used on a Mac when the compiled bridge is not built.

What it relies on in PyTorch's implementation (docs/architecture.md lists each fact with its source lines):
- positional argument i binds to [[buffer(i)]]; a tensor binds as its storage's buffer at byte offset
  storage_offset * element_size, with its strides ignored (the registry hands over contiguous tensors, so a view that
  starts inside its storage is read correctly and a strided one never arrives);
- a Python float is passed as 4-byte fp32 and a Python int or bool as 8-byte int64, whatever the kernel declares.
  A `constant half&` or `constant bfloat&` given a float would read the wrong bytes, so every Scalar travels as a
  one-element tensor holding its exact MSL bytes (a buffer bound to a `constant T&` slot); those are cached by value,
  since plans repeat the same epsilons and sizes call after call;
- threads and group_size are given as 3-element tuples of equal length (dispatchThreads semantics);
- it cannot take function-constant values (the source is specialised as text instead), nor threadgroup memory
  lengths (a plan that needs them is refused), and it reads the source as ASCII.
It encodes on PyTorch's own MPS stream.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from .. import launches
from ..kernels.spec import KernelFamily, LaunchPlan, Scalar
from .metal_source import buffer_arguments, pack_scalar, specialised_source


class JitUnsupported(RuntimeError):
    """A plan or source that torch.mps.compile_shader cannot run as given."""


def ascii_source(text: str, source: str) -> str:
    """PyTorch hands the source to Metal as an ASCII string (NSASCIIStringEncoding): anything else would not reach
    the compiler intact, so it is refused here, at its line."""
    for number, line in enumerate(text.splitlines(), 1):
        if not line.isascii():
            column = next(i for i, c in enumerate(line, 1) if not c.isascii())
            raise JitUnsupported(f"{source}: specialised line {number}, column {column}: a non-ASCII character; "
                                 "torch.mps.compile_shader passes the source to Metal as ASCII")
    return text


@lru_cache(maxsize=256)
def _library(source: str, constants: tuple):
    text, _ = specialised_source(source, constants)
    return torch.mps.compile_shader(ascii_source(text, source))


@lru_cache(maxsize=4096)
def _scalar_tensor(value, msl_type: str, device: str) -> torch.Tensor:
    raw = np.frombuffer(pack_scalar(Scalar(value, msl_type)), dtype=np.uint8).copy()
    return torch.from_numpy(raw).to(device)


class JitBackend:
    name = "metal-jit"
    device_types = ("mps",)

    def unavailable(self) -> str | None:
        if not torch.backends.mps.is_available():
            return "MPS is not available on this machine"
        if not hasattr(torch.mps, "compile_shader"):
            return f"torch {torch.__version__} has no torch.mps.compile_shader (needs 2.7 or newer)"
        return None

    def launch(self, family: KernelFamily, plan: LaunchPlan, tensors: dict[str, torch.Tensor]) -> None:
        for d in plan.dispatches:
            if d.threadgroup_memory:
                raise JitUnsupported(f"kernel '{d.kernel}' needs threadgroup memory lengths "
                                     f"{dict(d.threadgroup_memory)}, which torch.mps.compile_shader cannot set")
        lib = _library(family.source, tuple(sorted(plan.constants.items())))
        device = str(next(v for v in tensors.values() if isinstance(v, torch.Tensor)).device)
        # Each call encodes on PyTorch's MPS stream through its shared compute encoder, which PyTorch opens with the
        # default (serial) dispatch type: a dispatch starts after the previous one has finished and sees its
        # writes. PyTorch's own two-pass decode attention relies on the same order. Hence no barrier here.
        for d in plan.dispatches:
            launches.record()
            args = buffer_arguments(family.source, d, tensors, lambda b: _scalar_tensor(b.value, b.msl_type, device))
            getattr(lib, d.kernel)(*args, threads=tuple(d.threads), group_size=tuple(d.group_size))
