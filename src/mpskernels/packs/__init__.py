"""Kernel packs: generated kernels stored as data (Metal source + a declarative launch description), loaded
without running anything they carry, verified like the library's own kernels, and swapped in by optimize()."""

from .declaration import Declaration, DeclarationError, parse_declaration
from .formula import FormulaError
from .module import PackCallError, PackModule
from .pack import KernelPack, PackError, class_key, load_pack
from .source_checks import SourceError, check_pack_source

__all__ = [
    "Declaration", "DeclarationError", "FormulaError", "KernelPack", "PackCallError", "PackError", "PackModule",
    "SourceError", "check_pack_source", "class_key", "load_pack", "parse_declaration",
]  # fmt: skip
