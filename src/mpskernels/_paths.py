"""Where the package's data lives: Metal sources, the emulator's C++ headers, and the compile cache.

An installed package carries copies under `mpskernels/_data/`; a source checkout (editable install or tests run
from the tree) uses the repository's own `metal/` and `csrc/` folders, so there is one copy to edit.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

_PACKAGE = Path(__file__).resolve().parent
_REPO = _PACKAGE.parent.parent


def _data_dir(name: str) -> Path:
    installed = _PACKAGE / "_data" / name
    if installed.is_dir():
        return installed
    checkout = _REPO / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"mpskernels: cannot find its '{name}' folder (looked in {installed} and {checkout})")


def metal_dir() -> Path:
    """The shipped `.metal` kernel sources."""
    return _data_dir("metal")


def emulator_include_dir() -> Path:
    """The emulator's C++ headers: `mtl/` (the metal_stdlib shim and runtime) and `stub/` (empty Metal headers)."""
    return _data_dir("csrc") / "emu"


def bridge_source() -> Path:
    """The Objective-C++ bridge's source, compiled on a Mac at first use (runtime/bridge_build.py)."""
    return _data_dir("csrc") / "mps" / "bridge.mm"


def cache_dir() -> Path:
    """Compiled emulator libraries; MPSKERNELS_CACHE_DIR overrides the per-user cache folder."""
    override = os.environ.get("MPSKERNELS_CACHE_DIR")
    path = Path(override) if override else Path(platformdirs.user_cache_dir("mpskernels")) / "emulator"
    path.mkdir(parents=True, exist_ok=True)
    return path
