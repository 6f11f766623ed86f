"""What each shipped kernel costs in registers on the NVIDIA lane: registers per thread, and the bytes it keeps in
local memory (a stack frame for arrays the compiler could not keep in registers, and spills), read from `ptxas -v`
for sm_90 without a GPU.

Why the lane reports it: a kernel whose per-thread values do not fit in registers reads and writes them through
memory, which the timings then charge to the kernel's design rather than to its bytes; the 16-bit row kernels
did (stack frames of 128-256 bytes, registers capped at 64 by their 1024-thread launch bound) and ran at half the
copy bandwidth their fp32 versions reached. Apple GPUs have the same trade: a kernel with more live values per
thread gets fewer threads per core (a lower maxTotalThreadsPerThreadgroup) or spills, so a small per-thread
footprint is a property of the Metal code, and this table is evidence about it (not a model of Apple's compiler).
"""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .nvrtc import compile_to_ptx
from .source import cuda_source, nvrtc_options, unit

ARCH = "sm_90"


@dataclass(frozen=True)
class Resources:
    kernel: str  # host name
    constants: tuple  # the function-constant specialisation, sorted (name, value) pairs
    registers: int
    stack_bytes: int  # local-memory frame: arrays not held in registers
    spill_bytes: int  # spill stores

    @property
    def in_registers(self) -> bool:
        return self.stack_bytes == 0 and self.spill_bytes == 0


def cuda_tool(name: str) -> str | None:
    """A CUDA toolkit executable: on PATH, or from an NVIDIA pip wheel (nvidia/<package>/bin/<name>: ptxas from
    nvidia-cuda-nvcc-cu12, nvdisasm from nvidia-cuda-nvdisasm)."""
    found = shutil.which(name)
    if found:
        return found
    try:
        import nvidia  # namespace package of the pip wheels

        for root in nvidia.__path__:
            for candidate in sorted(Path(root).glob(f"*/bin/{name}")):
                return str(candidate)
    except ImportError:
        pass
    return None


def ptxas() -> str | None:
    """The ptxas executable (cuda_tool)."""
    return cuda_tool("ptxas")


@lru_cache(maxsize=8)
def translated_ptx(source: str, constants: tuple):
    """metal/<source> under one specialisation: its CUDA translation and NVRTC's PTX for ARCH. Cached: NVRTC takes
    40 s on attention.metal, and one test or report reads several kernels of one specialisation (a process reads
    the .metal files as they are when first asked; they do not change under a test run or a report)."""
    translated = cuda_source(source, constants)
    return translated, compile_to_ptx(translated.text, nvrtc_options(ARCH))


def assemble(source: str, constants: tuple, out_dir: Path, *ptxas_args: str):
    """metal/<source> under one specialisation through NVRTC to PTX, then ptxas for ARCH with ptxas_args (writing
    out_dir/out.cubin). Returns the translation and ptxas's completed process (its log on stderr)."""
    tool = ptxas()
    if tool is None:
        raise FileNotFoundError("no ptxas found (install a CUDA toolkit or the nvidia-cuda-nvcc-cu12 wheel)")
    translated, text = translated_ptx(source, constants)
    ptx = out_dir / "kernels.ptx"
    ptx.write_text(text)
    run = subprocess.run([tool, f"-arch={ARCH}", *ptxas_args, "-o", str(out_dir / "out.cubin"), str(ptx)],
                         capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise RuntimeError(f"ptxas failed on {source}: {run.stderr[-2000:]}")
    return translated, run


def boolean_constants(source: str) -> list[str]:
    """The names of metal/<source>'s boolean function constants, sorted."""
    return sorted(name for name, c in unit(source).program.constants.items() if c.type_text == "bool")


def specialisations(source: str) -> list[tuple]:
    """Every combination of the file's boolean function constants (one empty specialisation without any)."""
    names = boolean_constants(source)
    return [tuple(zip(names, values)) for values in itertools.product((False, True), repeat=len(names))]


def named_specialisation(source: str, true_constants: list[str]) -> tuple:
    """The specialisation of metal/<source> with the boolean constants named true and the others false (the lane
    times one such specialisation; a worst over all of them can hide the one it times)."""
    names = boolean_constants(source)
    unknown = sorted(set(true_constants) - set(names))
    if unknown:
        raise ValueError(f"{source} has no boolean function constant {', '.join(unknown)} (it has: "
                         f"{', '.join(names) or 'none'})")
    return tuple((name, name in true_constants) for name in names)


_ENTRY = re.compile(r"Compiling entry function '(\w+)'")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores")
_REGISTERS = re.compile(r"Used (\d+) registers")


def parse_ptxas_log(log: str, names: dict[str, str], constants: tuple) -> list[Resources]:
    """Resources per entry from `ptxas -v` output (entry symbols mapped to host names by `names`)."""
    out, symbol, frame = [], None, (0, 0)
    for line in log.splitlines():
        if m := _ENTRY.search(line):
            symbol, frame = m.group(1), (0, 0)
        elif m := _FRAME.search(line):
            frame = (int(m.group(1)), int(m.group(2)))
        elif (m := _REGISTERS.search(line)) and symbol:
            out.append(Resources(names.get(symbol, symbol), constants, int(m.group(1)), *frame))
            symbol = None
    return out


def kernel_resources(source: str, constants: tuple = ()) -> list[Resources]:
    """Registers and local memory of every kernel in metal/<source> under one specialisation."""
    with tempfile.TemporaryDirectory() as tmp:
        translated, run = assemble(source, constants, Path(tmp), "-v")
    names = {entry.symbol: name for name, entry in translated.entries.items()}
    return parse_ptxas_log(run.stderr, names, constants)
