"""CUDA text for a shipped `.metal` file and a function-constant specialisation (cached), and the NVRTC options."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from .. import msl
from .._paths import _PACKAGE, _REPO, metal_dir
from ..msl.transform import Specialization
from .translate import CudaSource, to_cuda


def shim_include_dir() -> Path:
    """The folder holding mtlcuda/shim.cuh: inside an installed package, or the checkout's csrc/cuda."""
    for candidate in (_PACKAGE / "_data" / "csrc" / "cuda", _REPO / "csrc" / "cuda"):
        if (candidate / "mtlcuda" / "shim.cuh").is_file():
            return candidate
    raise FileNotFoundError("mpskernels: cannot find the CUDA shim headers (csrc/cuda/mtlcuda)")


def nvrtc_options(arch: str | None = None) -> tuple[str, ...]:
    options = ("--device-as-default-execution-space", "--std=c++17", f"--include-path={shim_include_dir()}")
    return options + ((f"--gpu-architecture={arch}",) if arch else ())


@lru_cache(maxsize=None)
def unit(source: str) -> msl.TranslationUnit:
    return msl.read_file(metal_dir() / source)


@lru_cache(maxsize=256)
def cuda_source(source: str, constants: tuple = ()) -> CudaSource:
    """metal/<source> as CUDA, with `constants` (sorted (name, value) pairs) folded in."""
    u = unit(source)
    return to_cuda(u.text, u.program, Specialization(tuple(sorted(constants))))
