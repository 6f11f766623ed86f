"""MSL type names that the CUDA translation renames, because CUDA has its own (float4, uint3, ...) or lacks them.

The CUDA shim (csrc/cuda/mtlcuda/types.cuh) defines every `mtl_<name>` listed here with its MSL meaning.
"""

from __future__ import annotations

import re

_SCALARS_RENAMED = ("half", "bfloat", "uint", "ushort", "uchar", "ulong")
_VECTOR_ELEMENTS = ("bool", "char", "uchar", "short", "ushort", "int", "uint", "long", "ulong", "half", "bfloat",
                    "float")

RENAMED: dict[str, str] = {name: f"mtl_{name}" for name in _SCALARS_RENAMED}
RENAMED.update({f"{e}{n}": f"mtl_{e}{n}" for e in _VECTOR_ELEMENTS for n in (2, 3, 4)})

_IDENTIFIER = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\b")


def rename(identifier: str) -> str:
    return RENAMED.get(identifier, identifier)


def rename_in(text: str) -> str:
    """Renames every MSL type name in a piece of C++ (an instantiation's template arguments, a literal)."""
    return _IDENTIFIER.sub(lambda m: rename(m.group(0)), text)
