"""How a shipped kernel's loops load memory on the NVIDIA lane, read from its machine code (sm_90 SASS, through
`ptxas` and `nvdisasm`, no GPU needed): for every loop, its instructions and its global loads by width.

Why: a memory-bound loop whose body issues one load and consumes it at once keeps one access in flight per SIMD
group, and then its bandwidth is set by latency, not by the bytes. The fp32 decode attention kernel was such a loop
(its 32 K steps rolled, one 16-byte load an iteration), and the 16-bit kernels loaded 16-byte chunks as eight 2-byte
loads (LDG.E.U16), which the PTX alone does not show as clearly. The widths are evidence about the Metal code only
where the lane translates an access as Metal would (docs/trust.md, "Vector operands"); the loop structure is the
NVIDIA compiler's, not Apple's, so a rolled loop here is a reason to look at the Metal code, not proof about Apple.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .registers import assemble, cuda_tool, translated_ptx

_LABEL = re.compile(r"^\s*(\.L_x_\d+):")
_FUNCTION = re.compile(r"^\.text\.([\w$.]+):")  # a function's section in an nvdisasm listing
_INSTRUCTION = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;")
_BRANCH = re.compile(r"\bBRA(?:\.\w+)*\s+(?:\w+,\s*)?`\((\.L_x_\d+)\)")
_LOAD = re.compile(r"\bLDG(?:\.\w+)*")
_REGISTER = re.compile(r"\bR(\d+)(?:\.64)?\b")
_WIDTH = re.compile(r"\.(64|128)\b")  # a load's width in bits where it is wider than one register


def _opcode_and_operands(text: str) -> tuple[str, str]:
    parts = text.split()
    if parts and parts[0].startswith("@"):  # a predicate guard
        parts = parts[1:]
    return (parts[0], " ".join(parts[1:])) if parts else ("", "")


def _registers(operands: str) -> set[int]:
    regs: set[int] = set()
    for m in _REGISTER.finditer(operands):
        r = int(m.group(1))
        regs.update((r, r + 1) if m.group(0).endswith(".64") else (r,))
    return regs


def _destination(load: str) -> set[int]:
    """The registers an LDG writes: its first operand and, for 64- and 128-bit loads, the ones after it."""
    opcode, operands = _opcode_and_operands(load)
    first = int(_REGISTER.search(operands).group(1))
    width = _WIDTH.search(opcode)
    return set(range(first, first + (int(width.group(1)) // 32 if width else 1)))


def _reads(text: str) -> set[int]:
    """The registers an instruction reads: its register operands after the destination (all of a store's). A
    heuristic: where an instruction writes two results (SHFL: a predicate, then a register), the second counts as
    read, which can only end a loads_before_first_use count early, never extend it."""
    opcode, operands = _opcode_and_operands(text)
    if not opcode.startswith(("STG", "STS", "STL", "ST.", "RED", "ATOM")):
        operands = operands.split(",", 1)[1] if "," in operands else ""
    return _registers(operands)


def loads_before_first_use(body: list[str]) -> int:
    """Global loads in `body` (instruction texts in order) issued before the first one's destination is read."""
    first = next((i for i, t in enumerate(body) if _LOAD.search(t)), None)
    if first is None:
        return 0
    written = _destination(body[first])
    count = 1
    for text in body[first + 1:]:
        if _reads(text) & written:
            break
        count += bool(_LOAD.search(text))
    return count


@dataclass(frozen=True)
class Loop:
    start: int  # address of the branch target (the loop's first instruction)
    end: int  # address of the backward branch
    instructions: int
    loads: dict = field(default_factory=dict)  # LDG form (LDG.E.128, LDG.E.U16, ..) -> count in the body
    stores: int = 0  # STG instructions in the body
    # Global loads the body issues before its first load's value is first used (0 without loads): 1 where each
    # load is consumed at once, the whole batch where a batch of loads goes out before any is used.
    loads_before_use: int = 0

    def describe(self) -> str:
        loads = ", ".join(f"{n} {k}" for k, n in sorted(self.loads.items())) or "no loads"
        return (f"{self.start:#07x}-{self.end:#07x}: {self.instructions:5d} instructions, {loads}, {self.stores} stores, "
                f"{self.loads_before_use} loads before the first use")


def nvdisasm() -> str | None:
    """The nvdisasm executable (cuda_tool: PATH, or the nvidia-cuda-nvdisasm wheel)."""
    return cuda_tool("nvdisasm")


def loops(listing: str) -> list[Loop]:
    """The loops of an nvdisasm listing: every backward branch, with the instructions from its target to it."""
    labels: dict[str, int] = {}
    pending: list[str] = []
    code: list[tuple[int, str]] = []
    for line in listing.splitlines():
        if m := _LABEL.match(line):
            pending.append(m.group(1))
        elif m := _INSTRUCTION.search(line):
            address = int(m.group(1), 16)
            labels.update((name, address) for name in pending)
            pending = []
            code.append((address, m.group(2)))
    found = []
    for address, text in code:
        m = _BRANCH.search(text)
        if not m or labels.get(m.group(1), address) >= address:
            continue
        start = labels[m.group(1)]
        body = [t for a, t in code if start <= a <= address]
        loads: dict[str, int] = {}
        for t in body:
            if lm := _LOAD.search(t):
                loads[lm.group(0)] = loads.get(lm.group(0), 0) + 1
        found.append(Loop(start, address, len(body), loads, sum(" STG" in f" {t}" for t in body),
                          loads_before_first_use(body)))
    return found


def disassemble(source: str, constants: tuple, *ptxas_args: str):
    """metal/<source> under one specialisation through ptxas (with ptxas_args) and nvdisasm: (its translation, the
    listing)."""
    disassembler = nvdisasm()
    if disassembler is None:
        raise FileNotFoundError("no nvdisasm found (install a CUDA toolkit or the nvidia-cuda-nvdisasm wheel)")
    with tempfile.TemporaryDirectory() as tmp:
        translated, _ = assemble(source, constants, Path(tmp), *ptxas_args)
        listing = subprocess.run([disassembler, "-c", str(Path(tmp) / "out.cubin")], check=True,
                                 capture_output=True, text=True).stdout
    return translated, listing


def kernel_loops(source: str, kernel: str, constants: tuple = ()) -> list[Loop]:
    """The loops of one kernel (its host name) of metal/<source> under one function-constant specialisation."""
    symbols = {name: entry.symbol for name, entry in translated_ptx(source, constants)[0].entries.items()}
    if kernel not in symbols:
        raise KeyError(f"{source} has no kernel {kernel!r}; it has {sorted(symbols)}")
    return loops(disassemble(source, constants, "-e", symbols[kernel])[1])


def function_sizes(listing: str) -> dict[str, int]:
    """Instructions per function (its symbol) of an nvdisasm listing: the lines of its `.text.<symbol>:` section."""
    sizes: dict[str, int] = {}
    current = None
    for line in listing.splitlines():
        if m := _FUNCTION.match(line):
            current = m.group(1)
            sizes[current] = 0
        elif current is not None and _INSTRUCTION.search(line):
            sizes[current] += 1
    return sizes


def kernel_code_sizes(source: str, constants: tuple = ()) -> dict[str, int]:
    """Machine-code instructions of each kernel of metal/<source> (host names) under one specialisation: its own
    section, not the functions ptxas left out of line.
    Why: a kernel's executed path can be short and still slow where it is spread over a large body of code. The
    lane's layer_norm_float16 executed 801 instructions a warp, straight-line, over 189 KB of its 17.2 k
    instructions, and waited on instruction fetch 1.81 cycles an instruction against rms_norm's 0.50 (3.1 k;
    Nsight Compute, benches/pending/README.md). The sizes are NVIDIA's machine code (and the lane shim's), not
    Apple's; a large one says where to look in the Metal code."""
    translated, listing = disassemble(source, constants)
    sizes = function_sizes(listing)
    return {name: sizes[entry.symbol] for name, entry in translated.entries.items() if entry.symbol in sizes}
