"""Compiled Metal libraries on the CPU emulator: list kernels, bind arguments, dispatch.

The call shape is the one the Metal path uses (`torch.mps.compile_shader`): positional argument i binds to
`[[buffer(i)]]`, `threads` is the total thread count (dispatchThreads semantics) and `group_size` the threadgroup
size. Scalars are packed by the parameter's real (instantiated) type, which the compiled library reports.
"""

from __future__ import annotations

import ctypes
import os
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .. import launches, msl
from ..msl import DispatchError, KernelExecutionError, Param, Specialization
from . import abi
from .compiler import build, shim_header_path

_TORCH_KINDS = {
    torch.bool: abi.KIND_BOOL,
    torch.float32: abi.KIND_FLOAT,
    torch.float16: abi.KIND_HALF,
    torch.bfloat16: abi.KIND_BFLOAT,
    torch.int8: abi.KIND_SIGNED,
    torch.int16: abi.KIND_SIGNED,
    torch.int32: abi.KIND_SIGNED,
    torch.int64: abi.KIND_SIGNED,
    torch.uint8: abi.KIND_UNSIGNED,
    torch.uint16: abi.KIND_UNSIGNED,
    torch.uint32: abi.KIND_UNSIGNED,
    torch.uint64: abi.KIND_UNSIGNED,
}

MAX_THREADS_PER_THREADGROUP = 1024


@dataclass(frozen=True)
class KernelInfo:
    """A launchable kernel: its host name, the kernel function it runs and the roles of its parameters."""

    host_name: str
    function: str
    params: tuple[Param, ...]
    uses_fibers: bool
    max_total_threads_per_threadgroup: int | None
    file: str
    line: int

    @property
    def buffers(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.role == "buffer")


def _triple(value: int | Sequence[int], what: str, kernel: str) -> tuple[int, int, int]:
    dims = (value,) if isinstance(value, int) else tuple(value)
    if not 1 <= len(dims) <= 3 or not all(isinstance(d, int) and d >= 0 for d in dims):
        raise DispatchError(f"kernel '{kernel}': {what} must be 1 to 3 non-negative ints, got {value!r}")
    return tuple(dims) + (1,) * (3 - len(dims))  # type: ignore[return-value]


def _pack_scalar(value: Any, info: abi.ParamInfo, kernel: str, param: Param) -> bytes:
    kind, size = info.value_kind, info.elem_size
    where = f"kernel '{kernel}': buffer({param.index}) '{param.name}'"
    if info.value_size != size:
        raise DispatchError(f"{where} holds a {info.value_size}-byte vector or struct; pass a tensor or bytes")
    try:
        if kind == abi.KIND_FLOAT and size == 4:
            return struct.pack("<f", float(value))
        if kind == abi.KIND_HALF:
            return np.float16(float(value)).tobytes()
        if kind == abi.KIND_BFLOAT:
            return torch.tensor(float(value), dtype=torch.bfloat16).view(torch.int16).numpy().tobytes()
        if kind == abi.KIND_BOOL:
            return struct.pack("<?", bool(value))
        if kind in (abi.KIND_SIGNED, abi.KIND_UNSIGNED) and not isinstance(value, float):
            fmt = {1: "b", 2: "h", 4: "i", 8: "q"}[size]
            return struct.pack("<" + (fmt if kind == abi.KIND_SIGNED else fmt.upper()), int(value))
    except (struct.error, OverflowError) as e:
        raise DispatchError(f"{where}: {value!r} does not fit a {size}-byte {abi.KIND_NAMES[kind]}: {e}") from None
    raise DispatchError(f"{where} is a {abi.KIND_NAMES[kind]} ({size} bytes); cannot pass {value!r} to it")


def _extent_bytes(t: torch.Tensor) -> int:
    """Bytes from the tensor's first element to the end of its last one: what a kernel may touch."""
    if t.numel() == 0:
        return 0
    if any(st < 0 for st in t.stride()):
        return t.untyped_storage().nbytes() - t.storage_offset() * t.element_size()
    last = sum((n - 1) * st for n, st in zip(t.shape, t.stride()))
    return (last + 1) * t.element_size()


class _Bound:
    """Keeps the memory behind each bound argument alive for the duration of a dispatch."""

    def __init__(self) -> None:
        self.keep: list[Any] = []

    def tensor(self, t: torch.Tensor, info: abi.ParamInfo, kernel: str, param: Param) -> tuple[int, int]:
        where = f"kernel '{kernel}': buffer({param.index}) '{param.name}'"
        if t.device.type != "cpu":
            raise DispatchError(f"{where}: the emulator runs on CPU tensors, got a tensor on {t.device}")
        raw_scalar = not info.is_pointer and t.dtype == torch.uint8  # bytes of a `constant T&`, as Metal sees it
        if info.value_kind != abi.KIND_OTHER and not raw_scalar:
            kind = _TORCH_KINDS.get(t.dtype)
            if kind != info.value_kind or t.element_size() != info.elem_size:
                raise DispatchError(f"{where} expects {abi.KIND_NAMES[info.value_kind]} elements of "
                                    f"{info.elem_size} bytes, got a {t.dtype} tensor")
        self.keep.append(t)
        return t.data_ptr(), _extent_bytes(t)

    def raw(self, data: bytes) -> tuple[int, int]:
        buf = ctypes.create_string_buffer(bytes(data), max(len(data), 1))
        self.keep.append(buf)
        return ctypes.addressof(buf), len(data)


class Library:
    """A Metal translation unit compiled for the CPU emulator, one shared library per function-constant set."""

    def __init__(self, unit: msl.TranslationUnit):
        self.unit = unit
        self._compiled: dict[Specialization, ctypes.CDLL] = {}
        self._lock = threading.Lock()
        self.kernels: dict[str, KernelInfo] = {
            e.host_name: KernelInfo(
                host_name=e.host_name,
                function=e.kernel.name,
                params=tuple(e.kernel.params),
                uses_fibers=e.kernel.uses_sync,
                max_total_threads_per_threadgroup=e.max_threads,
                file=e.kernel.file,
                line=e.kernel.line,
            )
            for e in unit.program.entries
        }
        self._index = {e.host_name: i for i, e in enumerate(unit.program.entries)}
        if not unit.program.constants:
            self.specialize({})  # report compile errors now rather than at the first dispatch

    @property
    def function_constants(self) -> dict[str, msl.FunctionConstant]:
        return dict(self.unit.program.constants)

    def __getattr__(self, name: str) -> "Kernel":
        if name.startswith("_") or name not in self.__dict__.get("kernels", {}):
            raise AttributeError(f"the library '{self.__dict__.get('unit').name}' has no kernel named '{name}'")
        return Kernel(self, name)

    def __dir__(self):
        return list(super().__dir__()) + list(self.kernels)

    def specialize(self, constants: Mapping[str | int, Any]) -> ctypes.CDLL:
        spec = Specialization.of(self._constant_names(constants))
        with self._lock:
            lib = self._compiled.get(spec)
            if lib is None:
                path = build(self.unit.cpp(spec, shim_header_path()))
                lib = abi.bind_library(ctypes.CDLL(str(path)))
                self._compiled[spec] = lib
        return lib

    def _constant_names(self, constants: Mapping[str | int, Any]) -> dict[str, Any]:
        by_index = {c.index: c.name for c in self.unit.program.constants.values()}
        out = {}
        for key, value in constants.items():
            name = by_index.get(key) if isinstance(key, int) else key
            if name not in self.unit.program.constants:
                raise DispatchError(f"library '{self.unit.name}' declares no function constant {key!r}")
            out[name] = value
        return out

    def dispatch(self, kernel: str, *args: Any, threads: int | Sequence[int], group_size: int | Sequence[int],
                 constants: Mapping[str | int, Any] | None = None,
                 threadgroup_memory: Mapping[int, int] | None = None, order: str | None = None, seed: int = 0,
                 workers: int | None = None, bounds_check: bool | None = None) -> None:
        """Runs `kernel` over `threads` threads in threadgroups of `group_size`, writing into the given buffers.

        order="shuffled" (or MPSKERNELS_EMULATOR_ORDER=shuffled) runs the lanes of a threadgroup in a seeded
        random order each step, which exposes missing barriers around threadgroup memory.
        bounds_check=True (or MPSKERNELS_EMULATOR_BOUNDS=1; the test suite turns it on) runs the kernel on guarded
        copies of its buffers, and each threadgroup array in a mapping of its own between guard pages: a read or
        write past a buffer's or a threadgroup array's end (or well before its start), or a write into the red zone
        around a threadgroup array (checked at barriers and at the end of each threadgroup), raises
        KernelExecutionError naming the buffer index or the threadgroup array and the byte offset.
        """
        launches.record()
        info = self.kernels.get(kernel)
        if info is None:
            raise DispatchError(f"library '{self.unit.name}' has no kernel '{kernel}' "
                                f"(it has: {', '.join(sorted(self.kernels)) or 'none'})")
        constants = self._constant_names(constants or {})
        self._check_constants(info, constants)
        lib = self.specialize(constants)
        index = self._index[kernel]
        described = (abi.ParamInfo * max(len(info.params), 1))()
        lib.mtl_describe_params(index, described)

        a = abi.DispatchArgs()
        grid = _triple(threads, "threads", kernel)
        group = _triple(group_size, "group_size", kernel)
        if 0 in group:
            raise DispatchError(f"kernel '{kernel}': group_size must be positive, got {group_size!r}")
        limit = info.max_total_threads_per_threadgroup or MAX_THREADS_PER_THREADGROUP
        if group[0] * group[1] * group[2] > limit:
            raise DispatchError(f"kernel '{kernel}': a threadgroup of {group[0] * group[1] * group[2]} threads "
                                f"exceeds its limit of {limit}")
        a.grid[:] = grid
        a.group[:] = group
        order = order or os.environ.get("MPSKERNELS_EMULATOR_ORDER", "fixed")
        if order not in ("fixed", "shuffled"):
            raise DispatchError(f"order must be 'fixed' or 'shuffled', got {order!r}")
        a.order_mode = abi.ORDER_SHUFFLED if order == "shuffled" else abi.ORDER_FIXED
        a.seed = seed & (2**64 - 1)
        a.workers = workers or int(os.environ.get("MPSKERNELS_EMULATOR_WORKERS", "0")) or (os.cpu_count() or 1)
        if bounds_check is None:
            bounds_check = os.environ.get("MPSKERNELS_EMULATOR_BOUNDS", "") not in ("", "0")
        a.bounds_check = 1 if bounds_check else 0

        bound = self._bind(info, described, args, constants, threadgroup_memory or {}, a)
        if bounds_check:
            bound.keep.extend(self._name_threadgroup_memory(info, a))
        rc = lib.mtl_dispatch(index, ctypes.byref(a))
        del bound
        if rc != 0:
            raise KernelExecutionError(a.error.decode(errors="replace") or f"kernel '{kernel}' failed")

    def _name_threadgroup_memory(self, info: KernelInfo, a: abi.DispatchArgs) -> list[Any]:
        """Points the dispatch at the names of its threadgroup arrays, for bounds errors; returns what to keep alive."""
        sites = [name for var in self.unit.program.threadgroup_variables for name, _ in var.declarators]
        site_names = (ctypes.c_char_p * max(len(sites), 1))(*(n.encode() for n in sites))
        arg_names = (ctypes.c_char_p * abi.MAX_THREADGROUP_ARGS)()
        for p in info.params:
            if p.role == "threadgroup" and p.index < abi.MAX_THREADGROUP_ARGS:
                arg_names[p.index] = p.name.encode()
        a.threadgroup_names = site_names
        a.threadgroup_arg_names = arg_names
        return [site_names, arg_names]

    def _check_constants(self, info: KernelInfo, constants: dict[str, Any]) -> None:
        program = self.unit.program
        entry = next(e for e in program.entries if e.host_name == info.host_name)
        tokens = program.tokens
        s, e = entry.kernel.body
        # A kernel parameter of the same name shadows the constant inside the body (MLX's sdpa_vector_2pass_2 takes
        # `constant int& blocks` beside the function constant `blocks`): Metal builds it with no constants given.
        shadowed = {p.name for p in entry.kernel.params}
        used = set()
        k = s
        while k < e:
            t = tokens[k]
            if t.text == "is_function_constant_defined":
                k += 4  # `is_function_constant_defined ( name )` asks; it does not use the value
                continue
            if t.text in program.constants and t.text not in shadowed:
                used.add(t.text)
            k += 1
        missing = sorted(used - set(constants))
        if missing:
            raise DispatchError(f"kernel '{info.host_name}' uses function constant(s) {', '.join(missing)}: give "
                                f"their values with constants={{...}}")

    def _bind(self, info: KernelInfo, described, args: Sequence[Any], constants: dict[str, Any],
              threadgroup_memory: Mapping[int, int], a: abi.DispatchArgs) -> _Bound:
        bound = _Bound()
        kernel = info.host_name
        buffer_slots = {p.index for p in info.params if p.role == "buffer"}
        for i, value in enumerate(args):
            if i not in buffer_slots and value is not None:
                raise DispatchError(f"kernel '{kernel}' has no [[buffer({i})]] parameter, but argument {i} was given")
        for param, d in zip(info.params, described):
            if param.role == "threadgroup":
                if param.index not in threadgroup_memory:
                    raise DispatchError(f"kernel '{kernel}': give the size of [[threadgroup({param.index})]] "
                                        f"'{param.name}' with threadgroup_memory={{{param.index}: nbytes}}")
                nbytes = threadgroup_memory[param.index]
                if nbytes <= 0 or nbytes % 16:
                    raise DispatchError(f"kernel '{kernel}': threadgroup memory lengths must be positive multiples "
                                        f"of 16 bytes, got {nbytes} for [[threadgroup({param.index})]]")
                a.threadgroup_lengths[param.index] = nbytes
                continue
            if param.role != "buffer":
                continue
            if param.condition and not constants.get(param.condition, False):
                continue  # not bound when its function constant is false, as on Metal
            value = args[param.index] if param.index < len(args) else None
            if value is None:
                raise DispatchError(f"kernel '{kernel}': [[buffer({param.index})]] '{param.name}' "
                                    f"({param.type_text}) was not given")
            ptr, size = self._pointer(bound, value, d, kernel, param)
            if not d.is_pointer and size < d.value_size:
                raise DispatchError(f"kernel '{kernel}': buffer({param.index}) '{param.name}' needs "
                                    f"{d.value_size} bytes, got {size}")
            a.buffers[param.index] = ptr
            a.buffer_sizes[param.index] = size
        return bound

    @staticmethod
    def _pointer(bound: _Bound, value: Any, d, kernel: str, param: Param) -> tuple[int, int]:
        if isinstance(value, torch.Tensor):
            return bound.tensor(value, d, kernel, param)
        if isinstance(value, np.ndarray):
            return bound.tensor(torch.from_numpy(value), d, kernel, param)
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bound.raw(bytes(value))
        if isinstance(value, ctypes.Structure | ctypes.Array):
            return bound.raw(bytes(value))
        if isinstance(value, (bool, int, float)):
            return bound.raw(_pack_scalar(value, d, kernel, param))
        raise DispatchError(f"kernel '{kernel}': cannot pass {type(value).__name__} to buffer({param.index}) "
                            f"'{param.name}': use a tensor, a numpy array, bytes or a Python scalar")

    def fiber_implementation(self) -> str:
        lib = next(iter(self._compiled.values()), None) or self.specialize({})
        return lib.mtl_fiber_implementation().decode()


class Kernel:
    """`lib.name(*buffers, threads=..., group_size=...)`: the compile_shader-style call of one kernel."""

    def __init__(self, library: Library, name: str):
        self.library = library
        self.name = name
        self.info = library.kernels[name]

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.library.dispatch(self.name, *args, **kwargs)

    def __repr__(self) -> str:
        roles = ", ".join(f"{p.name}:{p.role}" for p in self.info.params)
        return f"<emulated kernel {self.name}({roles})>"


def compile_file(path: str | Path, *, include_dirs: Sequence[str | Path] = (),
                 defines: Mapping[str, str] | None = None) -> Library:
    """Compiles a .metal file for the CPU emulator (cached on disk by content)."""
    return Library(msl.read_file(path, include_dirs, dict(defines or {})))


def compile_source(source: str, *, name: str = "source.metal", include_dirs: Sequence[str | Path] = (),
                   defines: Mapping[str, str] | None = None) -> Library:
    """Compiles MSL source held in a string; diagnostics name it `name`."""
    return Library(msl.read_source(source, name, include_dirs, dict(defines or {})))
