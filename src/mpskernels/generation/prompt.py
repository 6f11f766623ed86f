"""What the model is asked: the task, the reference source, the authoring contract, an example from the library,
and optionally a CUDA reference implementation and profiling data the user supplies. And how failures are fed
back: specific enough to act on (compiler errors with .metal lines, the first mismatching indices, timings)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..packs.declaration import FLOAT_DTYPE_NAMES
from ..packs.formula import FUNCTIONS

EXAMPLE_DIR = Path(__file__).parent / "examples" / "rms_norm"

SYSTEM = """You write Metal Shading Language compute kernels that replace PyTorch modules for inference on Apple \
GPUs (Apple silicon, Metal 3.2). You answer with exactly two fenced code blocks: the kernel source (```metal) and \
its launch declaration (```json). Your kernel is compiled, checked against the PyTorch module on many inputs and \
sizes (including sizes you are not shown), and timed. A kernel that is wrong on any input is rejected; one that is \
correct and faster than PyTorch is kept."""

CONTRACT = f"""## How to answer

Reply with two fenced code blocks and nothing else of substance:

1. ```metal — one self-contained Metal source file. Include only Metal headers (`#include <metal_stdlib>`). \
Name each kernel you launch with a host name ending in the dtype, e.g. `[[host_name("my_op_float32")]]`, and \
instantiate it for every dtype you declare.
2. ```json — the launch declaration, an object with these fields:
   - "inputs": names for the module's forward arguments, in order (all tensors).
   - "parameters": state-dict names of the module's parameters and buffers your kernels read ("weight", \
"proj.bias"; in formulas a dotted name is written with "_": proj_bias).
   - "attributes": plain number attributes of the module your kernels need (e.g. "eps").
   - "dtypes": which of {", ".join(FLOAT_DTYPE_NAMES)} the first input may have; other dtypes are not run.
   - "outputs": name -> {{"shape": formula, "dtype": formula}}. Outputs not listed in "returns" are scratch \
buffers for multi-launch kernels.
   - "launches": the dispatches, in order. Each has "kernel" (host name; "{{dtype}}" is replaced by the first \
input's dtype name), "buffers" (argument i binds [[buffer(i)]]: a tensor name, {{"<scalar type>": formula}} for a \
`constant T&` scalar such as {{"uint": "x.shape[-1]"}}, or null), "threads" (the TOTAL number of threads in \
each dimension — dispatchThreads semantics, the last threadgroup may be partial) and "group_size" (threads per \
threadgroup, at most 1024), optionally "constants" (function constants by name) and "threadgroup_memory" \
({{"<index>": bytes}} for [[threadgroup(i)]] arguments).
   - "returns": the outputs forward returns, in order.

Formulas are small expressions over the tensors' .shape (a tuple: index and slice it), .ndim, .dtype, .numel() \
and the attributes, with + - * // % ** min max and {", ".join(sorted(set(FUNCTIONS) - {"min", "max"}))} \
(cdiv(a, b) divides rounding up, round_up(a, b) rounds a up to a multiple of b, rows(t) is \
t.numel() // t.shape[-1]). Nothing else is evaluated.

## Rules the checker enforces
- Inputs arrive contiguous; outputs are freshly allocated and start as NaN: write every element.
- Never write to an input. Never return an input.
- Sizes vary: read every size from a buffer argument; handle any size, including ones that are not multiples of \
the threadgroup or SIMD width (31, 33, primes, 1).
- Inputs come from several distributions (normal, uniform, large magnitude, all negative, near zero): keep \
clamps, max-subtraction in softmax and other guards even if the example inputs never trigger them.
- Accumulate in float; fp32 results must match PyTorch to about 1e-5 relative, fp16 to 1e-3, bf16 to 1e-2.

## How to make it fast (Apple GPUs)
- SIMD groups are 32 threads: use simd_sum/simd_max/simd_shuffle for reductions, then one pass through \
threadgroup memory across SIMD groups; threadgroup sizes in multiples of 32.
- Fuse the whole module into as few launches and as few passes over memory as possible: a fused kernel that \
reads its input once beats several launches (each costs host time and a round trip through memory).
- Vectorise loads (several consecutive elements per thread), keep values in registers, avoid divergent barriers.
"""


@dataclass(frozen=True)
class Prompt:
    system: str
    first_message: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256((self.system + "\0" + self.first_message).encode()).hexdigest()


def example_section() -> str:
    problem = (EXAMPLE_DIR / "problem.py").read_text().strip()
    kernel = (EXAMPLE_DIR / "kernel.metal").read_text().strip()
    declaration = (EXAMPLE_DIR / "declaration.json").read_text().strip()
    return ("## An example from the mpskernels library\n\nFor this module:\n\n```python\n" + problem +
            "\n```\n\nan accepted answer is:\n\n```metal\n" + kernel + "\n```\n\n```json\n" + declaration + "\n```\n")


def build_prompt(reference_source: str, sizes: dict[str, int], *, cuda_reference: str | None = None,
                 profile: str | None = None) -> Prompt:
    """The opening prompt for the module in `reference_source` (a KernelBench problem file, or a module's class
    source); `sizes` are the sizes the candidate will be checked at first."""
    parts = [CONTRACT, example_section(), "## Your task\n\nWrite a Metal kernel (one or more launches) that "
             "computes exactly what this module's forward computes, in eval mode:\n\n```python\n" +
             reference_source.strip() + "\n```\n"]
    if sizes:
        shown = ", ".join(f"{k} = {v}" for k, v in sizes.items())
        parts.append(f"It is checked first at {shown}, then at other sizes.\n")
    if cuda_reference:
        parts.append("## A CUDA implementation of the same module, for reference\n\n```cuda\n" +
                     cuda_reference.strip() + "\n```\n")
    if profile:
        parts.append("## Profiling data for the PyTorch module\n\n```\n" + profile.strip() + "\n```\n")
    return Prompt(SYSTEM, "\n".join(parts))


def feedback_message(stage: str, detail: str, timing: str | None = None) -> str:
    """The message after a failed (or slow) attempt; `stage` says what failed: "reply", "declaration", "source",
    "compile", "verification", "timeout", "slower"."""
    heading = {
        "reply": "Your answer could not be read",
        "declaration": "The launch declaration is invalid",
        "source": "The Metal source uses something a kernel may not",
        "compile": "The Metal source does not compile",
        "verification": "The kernel compiled but is not correct",
        "timeout": "The kernel did not finish in time (a hang or an endless loop)",
        "slower": "The kernel is correct but not faster than PyTorch",
        "timing": "The kernel is correct and was timed",
    }.get(stage, stage)
    text = f"{heading}:\n\n{detail.strip()}\n"
    if timing:
        text += f"\nTimings: {timing}\n"
    return text + "\nReply with the corrected ```metal and ```json blocks."
