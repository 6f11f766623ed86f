"""Declarations of every kernel family (see spec.py for the format)."""

from .activations import SILU
from .rms_norm import RMS_NORM
from .spec import KernelFamily

FAMILIES: tuple[KernelFamily, ...] = (RMS_NORM, SILU)

__all__ = ["FAMILIES", "KernelFamily"]
