"""The `metal` backend: the compiled Objective-C++ bridge (csrc/mps/bridge.mm), built on macOS at first use.

The bridge encodes on PyTorch's current MPS stream with its shared encoder, caches libraries by source hash and
pipeline states by kernel name, and binds tensors with their storage offsets. Everything it needs arrives ready:
specialised source text and, for each dispatch of the plan in order, the kernel's name, tensors and packed scalar
bytes in [[buffer(i)]] order, grid and threadgroup sizes.
"""

from __future__ import annotations

import torch

from .. import launches
from . import bridge_build
from ..kernels.spec import KernelFamily, LaunchPlan
from .metal_source import buffer_arguments, pack_scalar, specialised_source


def _bridge():
    """The compiled extension (built against this process's torch on first use, then cached; bridge_build.py)."""
    built = bridge_build.bridge()
    if built.module is None:
        raise ImportError(f"the Objective-C++ bridge is not built ({built.describe()})")
    return built.module


class MetalBackend:
    name = "metal"
    device_types = ("mps",)

    def unavailable(self) -> str | None:
        if not torch.backends.mps.is_available():
            return "MPS is not available on this machine"
        try:
            _bridge()
        except ImportError as e:
            return str(e)
        return None

    def launch(self, family: KernelFamily, plan: LaunchPlan, tensors: dict[str, torch.Tensor]) -> None:
        text, digest = specialised_source(family.source, tuple(sorted(plan.constants.items())))
        dispatches = []
        for d in plan.dispatches:
            launches.record()
            args = buffer_arguments(family.source, d, tensors, pack_scalar)
            dispatches.append((d.kernel, args, list(d.threads), list(d.group_size),
                               sorted(d.threadgroup_memory.items())))
        # One bridge call encodes them all on one encoder, with a buffer barrier between consecutive dispatches.
        _bridge().launch(text, digest, dispatches)
