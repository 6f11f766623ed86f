"""Specialised MSL text and scalar packing shared by the two Metal backends."""

from __future__ import annotations

import hashlib
import struct
from functools import lru_cache

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


def pack_scalar(s: Scalar) -> bytes:
    """The bytes of a `constant T&` argument, as setBytes wants them."""
    if s.msl_type == "half":
        return torch.tensor(float(s.value), dtype=torch.float16).view(torch.int16).numpy().tobytes()
    if s.msl_type == "bfloat":
        return torch.tensor(float(s.value), dtype=torch.bfloat16).view(torch.int16).numpy().tobytes()
    return struct.pack(_PACK[s.msl_type], s.value)
