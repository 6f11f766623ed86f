"""Model replies for the loop's tests, built from the library's example kernel: a correct one, and one per way a
candidate goes wrong."""

from __future__ import annotations

import json
from pathlib import Path

import mpskernels

EXAMPLE = Path(mpskernels.__file__).parent / "generation" / "examples" / "rms_norm"
KERNEL = (EXAMPLE / "kernel.metal").read_text()
DECLARATION = json.loads((EXAMPLE / "declaration.json").read_text())
# The example problem at emulator-sized shapes.
PROBLEM = (EXAMPLE / "problem.py").read_text().replace("dim = 4096", "dim = 48").replace("batch_size = 16",
                                                                                        "batch_size = 3")


def answer(kernel: str = KERNEL, declaration: dict | str = DECLARATION, preface: str = "Here is my kernel.") -> str:
    text = declaration if isinstance(declaration, str) else json.dumps(declaration, indent=2)
    return f"{preface}\n\n```metal\n{kernel}```\n\n```json\n{text}\n```\n"


CORRECT = answer()
COMPILE_ERROR = answer(KERNEL.replace("float sum = 0.0f;", "float sum = 0.0f"))  # a missing semicolon, line 24
WRONG_NUMERICS = answer(KERNEL.replace(" * float(w[j])", ""))  # forgets the weight
# Hard-codes the row length it was shown: right at that size, wrong at held-out sizes.
HARD_CODED_SIZE = answer(KERNEL.replace("partial[0] / float(n)", "partial[0] / 48.0f"))
# Spins forever on finite inputs (the store through y may alias x, so the loop re-reads x each time).
HANGS = answer(KERNEL.replace("float sum = 0.0f;",
                              "float sum = 0.0f;\n    while (float(xr[0]) == float(xr[0])) { yr[0] = xr[0]; }"))
NO_CODE = "I would write a kernel that normalises each row, but here is only a description of it."
BAD_JSON = answer(declaration='{"inputs": ["x"], "outputs": ')
BAD_DECLARATION = answer(declaration={**DECLARATION, "launches": [{**DECLARATION["launches"][0],
                                                                   "threads": ["__import__('os').getpid()"]}]})
ESCAPES_THE_SANDBOX = answer('extern "C" int system(const char*);\n' + KERNEL)
# Points a device pointer at threadgroup memory: g++ (the emulator) accepts it, Apple's compiler does not.
MIXES_ADDRESS_SPACES = answer(KERNEL.replace("float sum = 0.0f;", "float sum = 0.0f;\n    device float* p = partial;\n    (void)p;"))
