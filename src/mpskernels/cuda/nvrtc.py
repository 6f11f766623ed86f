"""NVRTC through ctypes: compile CUDA text to PTX without a GPU (and without CuPy).

Used by the tests on CPU-only machines when an NVRTC library is installed (the `nvidia-cuda-nvrtc-cu12` wheel, or
a CUDA toolkit), and by the lane to report compile errors with their `.metal` lines.
"""

from __future__ import annotations

import ctypes
import glob
import os
from functools import lru_cache
from pathlib import Path


class NvrtcError(RuntimeError):
    """NVRTC rejected a translation; the message holds its log."""


def _candidates() -> list[str]:
    found = []
    if os.environ.get("MPSKERNELS_NVRTC"):
        found.append(os.environ["MPSKERNELS_NVRTC"])
    try:
        import nvidia.cuda_nvrtc  # the pip wheel (namespace package)

        for root in nvidia.cuda_nvrtc.__path__:
            found += sorted(glob.glob(str(Path(root) / "lib" / "libnvrtc.so*")))
    except ImportError:
        pass
    for root in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if root:
            found += sorted(glob.glob(str(Path(root) / "lib64" / "libnvrtc.so*")))
    return found + ["libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"]


@lru_cache(maxsize=None)
def library() -> ctypes.CDLL | None:
    """The NVRTC shared library, or None when none can be loaded."""
    for path in _candidates():
        if "builtins" in os.path.basename(path) or ".alt." in os.path.basename(path):
            continue
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


def version() -> tuple[int, int] | None:
    lib = library()
    if lib is None:
        return None
    major, minor = ctypes.c_int(), ctypes.c_int()
    lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    return major.value, minor.value


def compile_to_ptx(source: str, options: tuple[str, ...], name: str = "kernels.cu") -> str:
    """PTX for `source`; raises NvrtcError with NVRTC's log when it does not compile."""
    lib = library()
    if lib is None:
        raise NvrtcError("no NVRTC library found (pip install nvidia-cuda-nvrtc-cu12, or set MPSKERNELS_NVRTC)")
    program = ctypes.c_void_p()
    check(lib, lib.nvrtcCreateProgram(ctypes.byref(program), source.encode(), name.encode(), 0, None, None))
    try:
        opts = (ctypes.c_char_p * len(options))(*(o.encode() for o in options))
        result = lib.nvrtcCompileProgram(program, len(options), opts)
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(program, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(program, log)
        if result != 0:
            raise NvrtcError(log.value.decode(errors="replace"))
        check(lib, lib.nvrtcGetPTXSize(program, ctypes.byref(size)))
        ptx = ctypes.create_string_buffer(size.value)
        check(lib, lib.nvrtcGetPTX(program, ptx))
        return ptx.value.decode()
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(program))


def check(lib: ctypes.CDLL, result: int) -> None:
    if result != 0:
        lib.nvrtcGetErrorString.restype = ctypes.c_char_p
        raise NvrtcError(lib.nvrtcGetErrorString(result).decode())
