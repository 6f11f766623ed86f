"""The Objective-C++ bridge (csrc/mps/bridge.mm), compiled at first use against the torch that is running.

A C++ extension is tied to the exact torch it was compiled against (its ABI and its headers). Built at install time,
a build-isolated `pip install` compiles it against whatever torch the isolated build environment fetched, which
can differ from the user's and then fails or crashes at import. So nothing is built at install time: the first
process that wants the `metal` backend compiles the bridge with `torch.utils.cpp_extension.load` into a cache folder
keyed by the torch version, the macOS version and the bridge source's hash; later processes import that build
directly (no compiler, no ninja). Any failure (no compiler or ninja, a compile error, an import error) gives None,
one log line that names the reason, and the `metal-jit` backend (torch.mps.compile_shader) runs instead.
"""

from __future__ import annotations

import hashlib
import logging
import platform
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from .._extensions import import_built
from .._paths import bridge_source, cache_dir

log = logging.getLogger("mpskernels")

EXTENSION = "mpskernels_mps_bridge"
# -fobjc-arc: the bridge is written for ARC (it keeps id<MTLLibrary> in C++ containers and casts with __bridge).
# No -std: torch's own JIT picks the C++ standard its headers need (c++17 for older torch, c++20 for newer), and a
# flag here would come after it and override it.
CFLAGS = ("-fobjc-arc",)
LDFLAGS = ("-framework", "Metal", "-framework", "Foundation")

BUILT, CACHED, FAILED, NOT_ATTEMPTED = "built at first use", "cached", "failed", "not attempted"


@dataclass(frozen=True)
class BridgeBuild:
    module: Any | None  # the imported extension, or None
    how: str  # BUILT, CACHED, FAILED or NOT_ATTEMPTED
    detail: str  # the build folder, or why there is no bridge

    def describe(self) -> str:
        return f"{self.how}: {self.detail}"


def on_macos() -> bool:
    return sys.platform == "darwin"


def macos_version() -> str:
    return platform.mac_ver()[0]


def cache_key(torch_version: str, macos: str, source: bytes) -> str:
    """The build folder's name: a build is reused only by the same torch, the same macOS and the same source."""
    digest = hashlib.sha256(b"\0".join((torch_version.encode(), macos.encode(), source))).hexdigest()[:16]
    readable = re.sub(r"[^A-Za-z0-9.-]+", "_", f"torch{torch_version}-macos{macos}")
    return f"{readable}-{digest}"


def build_dir(key: str) -> Path:
    """Next to the emulator's compiled libraries (one cache folder, one MPSKERNELS_CACHE_DIR override)."""
    return cache_dir() / "mps-bridge" / key


def _compile(source: Path, directory: Path):
    from torch.utils.cpp_extension import load

    directory.mkdir(parents=True, exist_ok=True)
    return load(name=EXTENSION, sources=[str(source)], extra_cflags=list(CFLAGS), extra_ldflags=list(LDFLAGS),
                build_directory=str(directory), verbose=False)


def failure_reason(e: BaseException) -> str:
    """One line: the compiler's first error line when there is one (cpp_extension's message starts with the whole
    ninja command line), else the start of the message."""
    text = str(e)
    first_error = next((line for line in text.splitlines() if re.search(r"\berror\b", line)
                        and not line.startswith("Error building extension")), None)
    return f"{type(e).__name__}: {' '.join((first_error or text).split())[:300]}"


def build() -> BridgeBuild:
    """Imports the cached bridge for this torch and macOS, or compiles it; never raises."""
    if not on_macos():
        return BridgeBuild(None, NOT_ATTEMPTED, "the bridge is built on macOS only")
    if not torch.backends.mps.is_available():
        return BridgeBuild(None, NOT_ATTEMPTED, "MPS is not available on this machine")
    try:
        source = bridge_source()
        directory = build_dir(cache_key(torch.__version__, macos_version(), source.read_bytes()))
        if (directory / f"{EXTENSION}.so").exists():
            return BridgeBuild(import_built(EXTENSION, directory / f"{EXTENSION}.so"), CACHED, str(directory))
        return BridgeBuild(_compile(source, directory), BUILT, str(directory))
    except BaseException as e:  # noqa: BLE001  (a failed build must never stop the program: metal-jit runs instead)
        if isinstance(e, KeyboardInterrupt):
            raise
        reason = failure_reason(e)
        log.warning("mpskernels: the Objective-C++ bridge is unavailable (%s); the metal-jit backend "
                    "(torch.mps.compile_shader) will be used", reason)
        return BridgeBuild(None, FAILED, reason)


@lru_cache(maxsize=1)
def bridge() -> BridgeBuild:
    """The bridge of this process: built or imported once, on first use."""
    return build()


__all__ = ["BridgeBuild", "bridge", "build", "build_dir", "cache_key"]
