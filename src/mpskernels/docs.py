"""Documentation derived from the kernel declarations: `python -m mpskernels.docs` rewrites docs/kernels.md."""

from __future__ import annotations

import sys
from pathlib import Path

from .kernels import FAMILIES
from .kernels.contract import NUMERICS
from .kernels.spec import KernelFamily

HEADER = """# Kernels

Generated from the declarations in `src/mpskernels/kernels/` by `python -m mpskernels.docs`; do not edit by hand.
Each op is `torch.ops.mpskernels.<op>`. Inputs outside a kernel's constraints run the op's PyTorch reference.

| op | schema | dtypes | falls back to the reference when | fuses | source | provenance |
|---|---|---|---|---|---|---|
"""


def _constraints(family: KernelFamily) -> str:
    docs = [(c.__doc__ or c.__name__).strip().split("\n")[0] for c in family.constraints]
    return "; ".join(docs) or "never"


def kernel_table() -> str:
    rows = []
    for f in FAMILIES:
        dtypes = ", ".join(str(d).replace("torch.", "") for d in f.dtypes)
        rows.append(f"| `{f.name}` | `{f.schema}` | {dtypes} | {_constraints(f)} | {f.fusions} | "
                    f"`metal/{f.source}` | {f.provenance.author}; {f.provenance.verified} |")
    return HEADER + "\n".join(rows) + "\n" + NUMERICS


def main(argv: list[str] | None = None) -> int:
    path = Path(argv[0] if argv else "docs/kernels.md")
    path.write_text(kernel_table())
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
