"""An anchor's instantiation file compiled for a backend: the emulator (CPU) or the NVIDIA lane (CUDA).

Each anchor kernel is instantiated by a small `.metal` file of ours in `anchors/metal/`, written the way the anchor's
own instantiation files are: it includes the anchor's header unmodified and names host names for the template
arguments we run. Both backends take the same call shape (`lib.dispatch(name, *args, threads=..., group_size=...)`).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from .sources import mlx_include_dir, torch_include_dir

INSTANTIATIONS = Path(__file__).resolve().parent / "metal"
BACKENDS = ("emulator", "cuda")


def include_dirs(anchor: str) -> list[Path]:
    """The include roots an instantiation file of `anchor` ("mlx" or "torch") needs."""
    if anchor == "mlx":
        return [mlx_include_dir()]
    if anchor == "torch":
        return [torch_include_dir()]
    raise ValueError(f"unknown anchor {anchor!r}; expected 'mlx' or 'torch'")


def instantiation(name: str) -> Path:
    """anchors/metal/<name>.metal; its anchor is the name's prefix (mlx_softmax -> mlx)."""
    path = INSTANTIATIONS / f"{name}.metal"
    if not path.is_file():
        raise FileNotFoundError(f"no anchor instantiation file {path}")
    return path


@lru_cache(maxsize=None)
def load(name: str, backend: str = "emulator"):
    """The compiled library of anchors/metal/<name>.metal on `backend` (cached per process)."""
    path = instantiation(name)
    includes = include_dirs(name.split("_", 1)[0])
    if backend == "emulator":
        from ..emulator import compile_file

        return compile_file(path, include_dirs=includes)
    if backend == "cuda":
        from ..cuda.library import compile_file as compile_cuda

        return compile_cuda(path, include_dirs=includes)
    raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
