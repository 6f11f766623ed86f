"""Any .metal file on the GPU with the emulator's call shape: `compile_file(path, include_dirs=..., defines=...)
.kernel(*buffers, threads=..., group_size=...)`. The lane's tests run the emulator's own conformance tests through it, so the CUDA shim is held to
the same expectations as the emulator's (where Metal defines the result).

Arguments bind [[buffer(i)]] by position: tensors (CPU tensors are copied to the GPU and their contents copied back
after the launch, as the emulator writes them in place), numpy arrays (likewise), Python scalars (packed by the
parameter's declared type, or by the Python type when the declared type is a template parameter), bytes (the raw
contents of a `constant T&`, bound as a small buffer).

`prepare` is the timing path: for CUDA tensors and scalars it binds and plans once and returns a function that only
launches (no copies, no synchronisation), on the current stream.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .. import msl
from ..kernels.spec import MSL_SCALAR_TYPES, LaunchPlan, Scalar
from ..msl.transform import Specialization
from .launch import CudaLaunch, plan_launch
from .runner import _text_module
from .translate import CudaSource, to_cuda


def _triple(v: int | Sequence[int]) -> tuple[int, int, int]:
    t = (int(v),) if isinstance(v, (int, np.integer)) else tuple(int(x) for x in v)
    return (t + (1, 1, 1))[:3]


# Metal's fixed-width and size typedefs (real headers declare `constant int64_t& ...`), as the scalar they name.
FIXED_WIDTH = {"int64_t": "long", "uint64_t": "ulong", "size_t": "ulong", "int32_t": "int", "uint32_t": "uint",
               "int16_t": "short", "uint16_t": "ushort", "bfloat16_t": "bfloat", "float32_t": "float",
               "float16_t": "half"}


def scalar_type(type_text: str, value: Any) -> str:
    """The MSL type a scalar argument is packed as: the parameter's own, else one from the Python value."""
    words = [w for w in re.findall(r"[A-Za-z_]\w*", type_text) if w not in ("constant", "const", "device")]
    if len(words) == 1 and FIXED_WIDTH.get(words[0], words[0]) in MSL_SCALAR_TYPES:
        return FIXED_WIDTH.get(words[0], words[0])
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, np.integer)):
        return "int"
    return "float"


@dataclass(frozen=True)
class KernelInfo:
    entry: msl.Entry
    uses_fibers: bool  # the front end's barrier/collective classification (the emulator's name for it)


@dataclass
class Bound:
    """A call's arguments bound to [[buffer(i)]] slots: the plan's buffer list and the GPU tensors it names."""

    buffers: tuple
    on_gpu: dict[str, torch.Tensor]
    write_back: list[tuple[Any, torch.Tensor]]  # (caller's CPU array/tensor, its GPU copy)


@dataclass(frozen=True)
class Launcher:
    """One planned dispatch: calling it launches its regions on the current stream and does nothing else."""

    function: Any  # the CuPy kernel function
    calls: tuple  # (grid, block, arguments) per region
    shared_bytes: int
    tensors: dict[str, torch.Tensor]  # the launch holds raw pointers: the tensors must live as long as it does

    def __call__(self) -> None:
        for blocks, block, args in self.calls:
            self.function(blocks, block, args, shared_mem=self.shared_bytes)


class CudaLibrary:
    def __init__(self, path: str | Path, include_dirs: Sequence[str | Path] = (),
                 defines: Mapping[str, str] | None = None):
        self.unit = msl.read_file(path, [Path(d) for d in include_dirs], dict(defines or {}))
        self.kernels = {e.host_name: KernelInfo(e, e.kernel.uses_sync) for e in self.unit.program.entries}

    @lru_cache(maxsize=64)
    def translated(self, constants: tuple = ()) -> CudaSource:
        """The CUDA translation for sorted (name, value) function constants (no GPU needed: tests compile it with
        NVRTC on the CPU)."""
        return to_cuda(self.unit.text, self.unit.program, Specialization(constants))

    @lru_cache(maxsize=64)
    def compiled(self, constants: tuple):
        source = self.translated(constants)
        return source, _text_module(source.text)

    def __getattr__(self, name: str):
        if name.startswith("_") or name not in self.__dict__.get("kernels", {}):
            raise AttributeError(name)
        return lambda *args, **kwargs: self.dispatch(name, *args, **kwargs)

    def bind(self, kernel: str, args: Sequence[Any], copy_to_gpu: bool) -> Bound:
        """Binds positional arguments to buffer slots; CPU data is copied to the GPU only when copy_to_gpu."""
        if kernel not in self.kernels:
            raise KeyError(f"no kernel '{kernel}' in this library (it has {', '.join(sorted(self.kernels))})")
        params = {p.index: p for p in self.kernels[kernel].entry.kernel.params if p.role == "buffer"}
        bound = Bound((), {}, [])
        buffers: list[Any] = []
        for i, a in enumerate(args):
            if a is None:
                buffers.append(None)
                continue
            if isinstance(a, (bytes, bytearray)):  # the raw bytes of a `constant T&` (a struct): a small buffer
                t = torch.frombuffer(bytearray(a), dtype=torch.uint8).cuda()
            elif isinstance(a, torch.Tensor) and a.is_cuda and a.is_contiguous():
                t = a
            elif isinstance(a, (np.ndarray, torch.Tensor)):
                if not copy_to_gpu:
                    raise TypeError(f"{kernel}: buffer {i} is not a contiguous CUDA tensor; prepare() launches "
                                    f"without copies, so it takes contiguous CUDA tensors and scalars only")
                t = (torch.from_numpy(np.ascontiguousarray(a)) if isinstance(a, np.ndarray) else a.contiguous())
                t = t.cuda()
                bound.write_back.append((a, t))
            else:
                buffers.append(Scalar(a.item() if hasattr(a, "item") else a,
                                      scalar_type(params[i].type_text if i in params else "", a)))
                continue
            bound.on_gpu[f"b{i}"] = t
            buffers.append(f"b{i}")
        bound.buffers = tuple(buffers)
        return bound

    def launcher(self, kernel: str, bound: Bound, threads, group_size, constants: Mapping[str, Any] | None,
                 threadgroup_memory: Mapping[int, int] | None) -> Launcher:
        """A function that launches every region of one dispatch with the bound arguments, and nothing else."""
        source, module = self.compiled(tuple(sorted((constants or {}).items())))
        entry = source.entries[kernel]
        plan = LaunchPlan(kernel, bound.buffers, _triple(threads), _triple(group_size),
                          threadgroup_memory=dict(threadgroup_memory or {}))
        launch: CudaLaunch = plan_launch(entry, plan, {k: v.data_ptr() for k, v in bound.on_gpu.items()})
        function = module.get_function(entry.symbol)
        calls = []
        for region in launch.regions:
            words, small = launch.arguments(region)
            args = tuple(np.uint64(w) for w in words) + tuple(np.uint32(v) for v in small)
            calls.append((region.blocks, region.block, args))
        return Launcher(function, tuple(calls), launch.shared_bytes, bound.on_gpu)

    def prepare(self, kernel: str, *args: Any, threads, group_size, constants: Mapping[str, Any] | None = None,
                threadgroup_memory: Mapping[int, int] | None = None) -> Launcher:
        """Binds CUDA tensors and scalars and plans the launch once; the returned function only launches (no
        synchronisation, no copies), so CUDA events around it time the kernel alone."""
        bound = self.bind(kernel, args, copy_to_gpu=False)
        return self.launcher(kernel, bound, threads, group_size, constants, threadgroup_memory)

    def dispatch(self, kernel: str, *args: Any, threads, group_size, constants: Mapping[str, Any] | None = None,
                 threadgroup_memory: Mapping[int, int] | None = None, **emulator_only: Any) -> None:
        """Runs `kernel` once on the GPU and waits for it, copying CPU arguments there and back; emulator-only
        options (order, seed, workers, bounds_check) are ignored: a correct kernel's results do not depend on them."""
        bound = self.bind(kernel, args, copy_to_gpu=True)
        self.launcher(kernel, bound, threads, group_size, constants, threadgroup_memory)()
        torch.cuda.synchronize()
        for original, t in bound.write_back:
            if isinstance(original, np.ndarray):
                original[...] = t.cpu().numpy()
            else:
                original.copy_(t)


def compile_file(path: str | Path, *, include_dirs: Sequence[str | Path] = (),
                 defines: Mapping[str, str] | None = None) -> CudaLibrary:
    """Reads and analyses a .metal file (its #includes found in include_dirs); kernels compile with NVRTC on first
    use, once per function-constant specialisation."""
    return CudaLibrary(path, include_dirs, defines)
