"""Where a benchmark runs: the machine it records, the device and backend it uses, whether it can time, and the
size budget problems are scaled to.

On a Mac with an Apple GPU: device mps, the automatic Metal backend, timing on, sizes scaled (only if needed) to
the GPU's recommended working-set size. Anywhere else: device cpu, the kernels on the MSL CPU emulator, timing
unavailable (a CPU time says nothing about a GPU kernel), sizes scaled down to what the emulator runs quickly.
"""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import subprocess
from dataclasses import asdict, dataclass
from typing import Any, ContextManager

import torch

from .. import __version__
from ..runtime import unavailable, use_backend

# Input + parameter elements per problem on the emulator: a few thousand per tensor keeps a full verification of a
# problem (seeds x distributions x held-out sizes) within seconds.
EMULATOR_MAX_ELEMENTS = 1 << 16
# On a GPU the verifier holds several copies of every tensor (reference, float64 oracle on the CPU, candidate,
# clones for the input check, poisoned blocks): budget this many bytes of working set per element.
BYTES_PER_ELEMENT_BUDGET = 64

# Memory bandwidth of Apple chips in GB/s (Apple's published figures; the binned variants of a chip may be lower,
# so a time under bytes/bandwidth is certainly impossible, one just above it may still be suspicious).
BANDWIDTH_GBPS = {
    "Apple M1": 68, "Apple M1 Pro": 200, "Apple M1 Max": 400, "Apple M1 Ultra": 800,
    "Apple M2": 100, "Apple M2 Pro": 200, "Apple M2 Max": 400, "Apple M2 Ultra": 800,
    "Apple M3": 100, "Apple M3 Pro": 150, "Apple M3 Max": 400, "Apple M3 Ultra": 819,
    "Apple M4": 120, "Apple M4 Pro": 273, "Apple M4 Max": 546,
}


class BenchSetupError(RuntimeError):
    """The benchmark cannot run as asked (a device that is not there, a pack that does not load)."""


@dataclass(frozen=True)
class Machine:
    chip: str
    os: str
    python: str
    torch: str
    mpskernels: str
    device: str  # where models and inputs live: "mps" or "cpu"
    backend: str  # which runs the kernels: "metal", "metal-jit" or "emulator"
    memory_gb: float | None
    timing: str  # "mps" or why timing is unavailable
    mps_fallback: bool  # PYTORCH_ENABLE_MPS_FALLBACK: ops MPS lacks silently run on the CPU

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def bandwidth_gbps(self) -> float | None:
        return BANDWIDTH_GBPS.get(self.chip)


@dataclass(frozen=True)
class BenchEnvironment:
    machine: Machine
    max_elements: int  # the scaling budget: input + parameter elements per problem

    @property
    def device(self) -> str:
        return self.machine.device

    @property
    def can_time(self) -> bool:
        return self.machine.timing == "mps"

    def kernels(self) -> ContextManager[None]:
        """The scope in which candidates run: the emulator is used only when asked for; on a Mac the automatic
        choice picks Metal."""
        return use_backend("emulator") if self.machine.backend == "emulator" else contextlib.nullcontext()

    def synchronize(self) -> None:
        if self.device == "mps":
            torch.mps.synchronize()

    def release_memory(self) -> None:
        """Between problems: give the GPU's cached blocks back (the next problem may need them)."""
        if self.device == "mps":
            gc.collect()
            torch.mps.empty_cache()


def environment(device: str = "auto", max_elements: int | None = None) -> BenchEnvironment:
    """The environment for `device` ("auto", "mps" or "cpu"); `max_elements` overrides the scaling budget."""
    if device not in ("auto", "mps", "cpu"):
        raise BenchSetupError(f"unknown device {device!r}; choose auto, mps or cpu")
    has_mps = torch.backends.mps.is_available()
    if device == "mps" and not has_mps:
        raise BenchSetupError("--device mps: this machine has no usable Apple GPU (torch.backends.mps is not "
                              "available); run with --device cpu to check correctness on the emulator")
    on_gpu = has_mps and device != "cpu"
    if on_gpu:
        backend = next((b for b in ("metal", "metal-jit") if unavailable(b) is None), None)
        if backend is None:
            raise BenchSetupError(f"this Mac has an Apple GPU but no Metal backend can run: metal: "
                                  f"{unavailable('metal')}; metal-jit: {unavailable('metal-jit')}")
        budget = max_elements or _gpu_budget()
        timing = "mps"
    else:
        backend = "emulator"
        budget = max_elements or EMULATOR_MAX_ELEMENTS
        timing = ("unavailable: no Apple GPU on this machine; correctness ran on the MSL CPU emulator"
                  if not has_mps else "unavailable: --device cpu runs correctness on the MSL CPU emulator only")
    machine = Machine(chip=chip_name(), os=platform.platform(), python=platform.python_version(),
                      torch=torch.__version__, mpskernels=__version__, device="mps" if on_gpu else "cpu",
                      backend=backend, memory_gb=_memory_gb(), timing=timing,
                      mps_fallback=os.environ.get("PYTORCH_ENABLE_MPS_FALLBACK", "") not in ("", "0"))
    return BenchEnvironment(machine, budget)


def _gpu_budget() -> int:
    return int(torch.mps.recommended_max_memory()) // BYTES_PER_ELEMENT_BUDGET


def chip_name() -> str:
    if platform.system() == "Darwin":
        try:
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                                 timeout=5)
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _memory_gb() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None
