"""Specialised MSL text and scalar packing shared by the two Metal backends."""

from __future__ import annotations

import hashlib
import struct
from functools import lru_cache
from typing import Any, Callable

import torch

from .. import msl
from .._paths import metal_dir
from ..msl.specialize import to_msl
from ..msl.transform import Specialization
from ..kernels.spec import Scalar

_PACK = {"float": "<f", "int": "<i", "uint": "<I", "long": "<q", "ulong": "<Q", "bool": "<?", "short": "<h",
         "ushort": "<H"}  # fmt: skip


@lru_cache(maxsize=None)
def _unit(source: str) -> msl.TranslationUnit:
    return msl.read_file(metal_dir() / source)


@lru_cache(maxsize=256)
def specialised_source(source: str, constants: tuple) -> tuple[str, str]:
    """(MSL text with the function constants folded in, its content hash) for metal/<source>."""
    unit = _unit(source)
    text = to_msl(unit.text, unit.program, Specialization(constants))
    return text, hashlib.sha256(text.encode()).hexdigest()


# Element types a switched-off buffer may be declared with, spelled out (a template parameter like T is not here:
# such a slot gets the call's first tensor, which carries the op's dtype).
_PLACEHOLDER_DTYPES = {"bool": torch.bool, "float": torch.float32, "half": torch.float16, "bfloat": torch.bfloat16,
                       "int": torch.int32, "uint": torch.int32, "char": torch.int8, "uchar": torch.uint8}


@lru_cache(maxsize=None)
def placeholder_dtypes(source: str, kernel: str) -> dict[int, torch.dtype]:
    """Buffer slot -> dtype of a placeholder for the kernel's buffers that a function constant can switch off and
    whose element type is spelled out: the specialised source keeps them as parameters, so both Metal backends bind
    something there, of the declared type (as Metal's validation layer expects)."""
    entry = next((e for e in _unit(source).program.entries if e.host_name == kernel), None)
    out = {}
    for p in entry.kernel.params if entry is not None else ():
        words = p.type_text.replace("*", " ").split()
        if p.role == "buffer" and p.condition and words and words[-1] in _PLACEHOLDER_DTYPES:
            out[p.index] = _PLACEHOLDER_DTYPES[words[-1]]
    return out


@lru_cache(maxsize=64)
def placeholder(dtype: torch.dtype, device: str) -> torch.Tensor:
    """A small tensor bound where a switched-off buffer of a spelled-out type sits (never read)."""
    return torch.zeros(16, dtype=dtype, device=device)


def buffer_arguments(family_source: str, dispatch: Any, tensors: dict[str, Any],
                     scalar: Callable[[Scalar], Any]) -> list:
    """A dispatch's [[buffer(i)]] arguments in order, as both Metal backends bind them: the tensor a buffer names,
    `scalar(s)` for a Scalar (packed bytes for the bridge, a typed one-element tensor for compile_shader), and for a
    buffer a function constant switched off, a placeholder of its declared type (any tensor where none is spelled)."""
    placeholder_tensor = next(v for v in tensors.values() if isinstance(v, torch.Tensor))
    args = []
    for i, b in enumerate(dispatch.buffers):
        if isinstance(b, str):
            args.append(tensors[b])
        elif isinstance(b, Scalar):
            args.append(scalar(b))
        else:
            typed = placeholder_dtypes(family_source, dispatch.kernel).get(i)
            args.append(placeholder_tensor if typed is None else placeholder(typed, str(placeholder_tensor.device)))
    return args


def pack_scalar(s: Scalar) -> bytes:
    """The bytes of a `constant T&` argument, as setBytes wants them."""
    if s.msl_type == "half":
        return torch.tensor(float(s.value), dtype=torch.float16).view(torch.int16).numpy().tobytes()
    if s.msl_type == "bfloat":
        return torch.tensor(float(s.value), dtype=torch.bfloat16).view(torch.int16).numpy().tobytes()
    return struct.pack(_PACK[s.msl_type], s.value)
