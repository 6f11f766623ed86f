"""`mpskernels doctor`: what this machine has, and what optimize() would do on it.

Each check is one line: what was looked at, what was found, and whether it is usable. The exit code says whether a GPU
kernel backend (metal or metal-jit) can run here: 0 when one can, 1 when the kernels would run on the emulator or as
their PyTorch references. Nothing here launches a kernel, and nothing compiles except, on a Mac, the Objective-C++
bridge the first time (as the metal backend's first use would; later runs import the cached build): doctor answers in
about a second after that.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from . import __version__

GPU_BACKENDS = ("metal", "metal-jit")


@dataclass(frozen=True)
class Check:
    name: str
    found: str
    ok: bool | None  # None: informational


def _system() -> list[Check]:
    from .bench.machine import chip_name

    mps_built, mps_available = torch.backends.mps.is_built(), torch.backends.mps.is_available()
    return [
        Check("os", platform.platform(), None),
        Check("chip", chip_name(), None),
        Check("python", platform.python_version(), None),
        Check("torch", torch.__version__, None),
        Check("mpskernels", __version__, None),
        Check("mps", "available" if mps_available else ("built in, but no usable device" if mps_built
                                                           else "not built into this torch"), mps_available),
    ]


def _backends() -> list[Check]:
    from .runtime import BACKENDS

    checks = []
    for name, what in (("metal", "Objective-C++ bridge"), ("metal-jit", "torch.mps.compile_shader"),
                       ("emulator", "MSL CPU emulator")):
        reason = BACKENDS[name].unavailable()
        checks.append(Check(f"backend {name} ({what})", reason or "usable", reason is None))
    return checks + [_bridge()]


def _bridge() -> Check:
    """How the metal backend's bridge came to be: built at first use, cached, failed (why), or not attempted here."""
    from .runtime import bridge_build

    built = bridge_build.bridge()
    ok = {bridge_build.BUILT: True, bridge_build.CACHED: True, bridge_build.FAILED: False}.get(built.how)
    return Check("Objective-C++ bridge build", built.describe(), ok)


def _tools() -> list[Check]:
    from .cuda import nvrtc
    from .msl.address_spaces import clang
    from .msl.preprocess import compiler

    try:
        cxx = compiler()
        emulator = f"{cxx} ({shutil.which(cxx)})"
    except RuntimeError as e:
        cxx, emulator = None, str(e)
    checker = clang()
    version = nvrtc.version()
    try:
        import cupy  # noqa: F401

        cupy_found = f"cupy {cupy.__version__}"
    except Exception as e:  # noqa: BLE001  (no CUDA, or a broken install: either way the lane cannot time)
        cupy_found = f"not importable ({type(e).__name__})"
    return [
        Check("emulator compiler", emulator, cxx is not None),
        Check("address-space check (clang++)", checker or "no clang++ on PATH", checker is not None),
        Check("NVRTC (the NVIDIA lane's compiler)", f"{version[0]}.{version[1]}" if version else "not found", None),
        Check("CuPy (the NVIDIA lane's launcher)", cupy_found, None),
    ]


def _cache() -> list[Check]:
    from ._paths import cache_dir

    root = cache_dir()
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    return [Check("cache folder", f"{root} ({size / 2**20:.1f} MiB)", None)]


def _would_run() -> Check:
    """The backend a model's kernels would run on: on an MPS model where MPS exists, else on a CPU model."""
    from .runtime import BackendError, choose_backend

    device = torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    try:
        backend, explicit = choose_backend(device)
    except BackendError as e:
        return Check("optimize() would use", f"nothing: {e}", False)
    forced = " (MPSKERNELS_BACKEND)" if explicit else ""
    if backend is None:
        why = ("the PyTorch reference was asked for" if explicit
               else f"no kernel backend runs on {device.type} tensors: optimize() swaps nothing")
        return Check("optimize() would use", why + forced, False)
    speed = "timed swaps (kept only where faster)" if backend.name in GPU_BACKENDS else "correctness only, no timing"
    return Check("optimize() would use", f"{backend.name} on {device.type} tensors{forced}: {speed}",
                 backend.name in GPU_BACKENDS)


SECTIONS: tuple[Callable[[], list[Check]], ...] = (_system, _backends, _tools, _cache)


def diagnose() -> list[Check]:
    checks = [c for section in SECTIONS for c in section()]
    return checks + [_would_run()]


def gpu_backend_usable(checks: list[Check]) -> bool:
    return checks[-1].ok is True


def render(checks: list[Check]) -> str:
    mark = {True: "ok ", False: "-- ", None: "   "}
    width = max(len(c.name) for c in checks)
    return "\n".join(f"{mark[c.ok]}{c.name:<{width}}  {c.found}" for c in checks)


def doctor(as_json: bool = False) -> int:
    """Prints the checks (as JSON with as_json); returns the exit code: 0 when a GPU kernel backend can run."""
    checks = diagnose()
    usable = gpu_backend_usable(checks)
    if as_json:
        print(json.dumps({"gpu_backend_usable": usable, "checks": [asdict(c) for c in checks]}, indent=1))
    else:
        print(render(checks))
        print("\na GPU kernel backend can run here" if usable else
              "\nno GPU kernel backend here: on Linux the kernels run on the emulator for testing "
              f"(MPSKERNELS_BACKEND=emulator){'; it is forced now' if os.environ.get('MPSKERNELS_BACKEND') else ''}")
    return 0 if usable else 1


__all__ = ["Check", "diagnose", "doctor"]
