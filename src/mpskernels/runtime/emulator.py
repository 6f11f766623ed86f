"""The `emulator` backend: run a plan on CPU tensors through the MSL CPU emulator."""

from __future__ import annotations

import shutil
from functools import lru_cache

import torch

from .._paths import metal_dir
from ..emulator import Library, compile_file
from ..kernels.spec import KernelFamily, LaunchPlan, Scalar


@lru_cache(maxsize=None)
def library(source: str) -> Library:
    return compile_file(metal_dir() / source)


class EmulatorBackend:
    name = "emulator"
    device_types = ("cpu",)

    def unavailable(self) -> str | None:
        if not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
            return "no C++ compiler (g++ or clang++) on PATH"
        return None

    def launch(self, family: KernelFamily, plan: LaunchPlan, tensors: dict[str, torch.Tensor]) -> None:
        # Dispatches run one after the other, each to completion: a later one sees every write of the earlier.
        lib = library(family.source)
        for d in plan.dispatches:
            args = [tensors[b] if isinstance(b, str) else b.value if isinstance(b, Scalar) else None
                    for b in d.buffers]
            lib.dispatch(d.kernel, *args, threads=d.threads, group_size=d.group_size, constants=dict(plan.constants),
                         threadgroup_memory=dict(d.threadgroup_memory))
