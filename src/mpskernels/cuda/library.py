"""Any .metal file on the GPU with the emulator's call shape: `compile_file(path).kernel(*buffers, threads=...,
group_size=...)`. The lane's tests run the emulator's own conformance tests through it, so the CUDA shim is held to
the same expectations as the emulator's (where Metal defines the result).

Arguments bind [[buffer(i)]] by position: tensors (CPU tensors are copied to the GPU and their contents copied back
after the launch, as the emulator writes them in place), numpy arrays (likewise), Python scalars (packed by the
parameter's declared type, or by the Python type when the declared type is a template parameter), bytes (the raw
contents of a `constant T&`, bound as a small buffer).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .. import msl
from ..kernels.spec import MSL_SCALAR_TYPES, LaunchPlan, Scalar
from ..msl.transform import Specialization
from .launch import plan_launch
from .runner import _text_module
from .translate import to_cuda


def _triple(v: int | Sequence[int]) -> tuple[int, int, int]:
    t = (int(v),) if isinstance(v, (int, np.integer)) else tuple(int(x) for x in v)
    return (t + (1, 1, 1))[:3]


def scalar_type(type_text: str, value: Any) -> str:
    """The MSL type a scalar argument is packed as: the parameter's own, else one from the Python value."""
    words = [w for w in type_text.split() if w not in ("constant", "const", "device", "&", "*")]
    if len(words) == 1 and words[0] in MSL_SCALAR_TYPES:
        return words[0]
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, np.integer)):
        return "int"
    return "float"


@dataclass(frozen=True)
class KernelInfo:
    entry: msl.Entry
    uses_fibers: bool  # the front end's barrier/collective classification (the emulator's name for it)


class CudaLibrary:
    def __init__(self, path: str | Path):
        self.unit = msl.read_file(path)
        self.kernels = {e.host_name: KernelInfo(e, e.kernel.uses_sync) for e in self.unit.program.entries}

    @lru_cache(maxsize=64)
    def compiled(self, constants: tuple):
        source = to_cuda(self.unit.text, self.unit.program, Specialization(constants))
        return source, _text_module(source.text)

    def __getattr__(self, name: str):
        if name.startswith("_") or name not in self.__dict__.get("kernels", {}):
            raise AttributeError(name)
        return lambda *args, **kwargs: self.dispatch(name, *args, **kwargs)

    def dispatch(self, kernel: str, *args: Any, threads, group_size, constants: Mapping[str, Any] | None = None,
                 threadgroup_memory: Mapping[int, int] | None = None, **emulator_only: Any) -> None:
        """Runs `kernel` once on the GPU; emulator-only options (order, seed, workers, bounds_check) are ignored:
        a correct kernel's results do not depend on them."""
        np_ = np
        source, module = self.compiled(tuple(sorted((constants or {}).items())))
        entry = source.entries[kernel]
        params = {p.index: p for p in self.kernels[kernel].entry.kernel.params if p.role == "buffer"}
        buffers: list[Any] = []
        on_gpu: dict[str, torch.Tensor] = {}
        write_back: list[tuple[Any, torch.Tensor]] = []
        for i, a in enumerate(args):
            if a is None:
                buffers.append(None)
                continue
            if isinstance(a, (bytes, bytearray)):  # the raw bytes of a `constant T&` (a struct): a small buffer
                t = torch.frombuffer(bytearray(a), dtype=torch.uint8).cuda()
            elif isinstance(a, np.ndarray):
                t = torch.from_numpy(np.ascontiguousarray(a)).cuda()
                write_back.append((a, t))
            elif isinstance(a, torch.Tensor):
                t = a.contiguous().cuda() if not a.is_cuda else a
                if t is not a:
                    write_back.append((a, t))
            else:
                buffers.append(Scalar(a.item() if hasattr(a, "item") else a,
                                      scalar_type(params[i].type_text if i in params else "", a)))
                continue
            on_gpu[f"b{i}"] = t
            buffers.append(f"b{i}")
        plan = LaunchPlan(kernel, tuple(buffers), _triple(threads), _triple(group_size),
                          threadgroup_memory=dict(threadgroup_memory or {}))
        launch = plan_launch(entry, plan, {k: v.data_ptr() for k, v in on_gpu.items()})
        function = module.get_function(entry.symbol)
        for region in launch.regions:
            words, small = launch.arguments(region)
            cuda_args = tuple(np_.uint64(w) for w in words) + tuple(np_.uint32(v) for v in small)
            function(region.blocks, region.block, cuda_args, shared_mem=launch.shared_bytes)
        torch.cuda.synchronize()
        for original, t in write_back:
            if isinstance(original, np.ndarray):
                original[...] = t.cpu().numpy()
            else:
                original.copy_(t)


def compile_file(path: str | Path) -> CudaLibrary:
    return CudaLibrary(path)
