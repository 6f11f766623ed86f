"""Declarations of every kernel family (see spec.py for the format).

Each module here declares its families in a module-level `FAMILIES` tuple; they are collected in module-name
order, so adding a family never means editing this file.
"""

from __future__ import annotations

import importlib
import pkgutil

from .spec import KernelFamily


def _collect() -> tuple[KernelFamily, ...]:
    found: list[KernelFamily] = []
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        if module == "spec":
            continue
        found.extend(getattr(importlib.import_module(f"{__name__}.{module}"), "FAMILIES", ()))
    names = [f.name for f in found]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RuntimeError(f"kernel families declared twice: {', '.join(duplicates)}")
    return tuple(found)


FAMILIES: tuple[KernelFamily, ...] = _collect()

__all__ = ["FAMILIES", "KernelFamily"]
