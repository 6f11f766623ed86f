"""The `metal-jit` backend: torch.mps.compile_shader, used on a Mac when the compiled bridge is not built.

compile_shader binds positional argument i to [[buffer(i)]] with its storage offset and encodes on PyTorch's own
MPS stream. It cannot take function-constant values (the source is specialised as text instead) and it passes
Python scalars at fixed widths, so each Scalar travels as a one-element tensor of its exact MSL type; those are
cached by value, since plans repeat the same epsilons and sizes call after call.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from .. import launches
from ..kernels.spec import KernelFamily, LaunchPlan, Scalar
from .metal_source import buffer_arguments, pack_scalar, specialised_source


@lru_cache(maxsize=256)
def _library(source: str, constants: tuple):
    text, _ = specialised_source(source, constants)
    return torch.mps.compile_shader(text)


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
        lib = _library(family.source, tuple(sorted(plan.constants.items())))
        device = str(next(v for v in tensors.values() if isinstance(v, torch.Tensor)).device)
        # Each call encodes on PyTorch's MPS stream through its shared compute encoder, which PyTorch opens with the
        # default (serial) dispatch type: a dispatch starts after the previous one has finished and sees its
        # writes. PyTorch's own two-pass decode attention relies on the same order. Hence no barrier here.
        for d in plan.dispatches:
            launches.record()
            args = buffer_arguments(family.source, d, tensors, lambda b: _scalar_tensor(b.value, b.msl_type, device))
            getattr(lib, d.kernel)(*args, threads=d.threads, group_size=d.group_size)
