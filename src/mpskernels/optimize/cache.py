"""The decision cache: whether a swap was faster, per machine, kernel, replaced module and shape signature, so a
second optimize() of the same model times nothing (and the compile backend reads the same answers).

One JSON file in the user cache folder (platformdirs; MPSKERNELS_CACHE_DIR overrides the folder, as it does for the
emulator's compiled libraries). A machine is its GPU name, OS, torch and mpskernels versions and the backend: a new
torch or mpskernels release changes the key, so every decision is measured again. Writes are atomic (a temporary
file, then os.replace) and merge with what another process wrote meanwhile; a file that cannot be read is ignored
with a warning and rewritten, never a crash.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

import platformdirs
import torch

CACHE_VERSION = 1
FILE_NAME = "optimize-decisions.json"


def default_path() -> Path:
    override = os.environ.get("MPSKERNELS_CACHE_DIR")
    return (Path(override) if override else Path(platformdirs.user_cache_dir("mpskernels"))) / FILE_NAME


@lru_cache(maxsize=None)
def gpu_name() -> str:
    """The chip the kernels run on (an Apple chip is CPU and GPU in one: its name names the GPU); asked once (it runs
    sysctl). Imported here: mpskernels.bench imports optimize."""
    from ..bench.machine import chip_name

    return chip_name()


def machine(backend: str) -> dict[str, str]:
    from .. import __version__

    return {"gpu": gpu_name(), "os": platform.platform(), "torch": torch.__version__,
            "mpskernels": __version__, "backend": backend}


def describe(value: Any) -> Any:
    """A call argument as the cache key sees it: a tensor's dtype and shape, a plain value itself, else its type."""
    if isinstance(value, torch.Tensor):
        return f"{str(value.dtype).removeprefix('torch.')}{list(value.shape)}"
    if isinstance(value, (tuple, list)):
        return [describe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): describe(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return type(value).__qualname__


def signature(module: torch.nn.Module, args: tuple, kwargs: dict) -> Any:
    """The inputs' dtypes and shapes, and the module's own parameters' (its cost depends on both)."""
    parameters = {n: describe(p) for n, p in module.named_parameters()}
    return {"args": describe(tuple(args)), "kwargs": describe(kwargs), "parameters": parameters}


def cache_key(machine_: dict[str, str], kernel: str, replaced: str, signature_: Any) -> str:
    return json.dumps([machine_, kernel, replaced, signature_], sort_keys=True, separators=(",", ":"))


class DecisionCache:
    """Decisions by key (see cache_key); loaded on first use, written by save()."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_path()
        self._decisions: dict[str, dict[str, Any]] | None = None
        self._new: dict[str, dict[str, Any]] = {}

    def get(self, key: str) -> dict[str, Any] | None:
        if key in self._new:
            return self._new[key]
        if self._decisions is None:
            self._decisions = self._read(warn=True)
        return self._decisions.get(key)

    def put(self, key: str, decision: dict[str, Any]) -> None:
        self._new[key] = decision

    def save(self) -> None:
        if not self._new:
            return
        decisions = {**self._read(warn=False), **self._new}  # keep what another process wrote meanwhile
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"version": CACHE_VERSION, "decisions": decisions}, indent=0, sort_keys=True)
        fd, temporary = tempfile.mkstemp(prefix=".decisions-", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(temporary, self.path)  # readers see the old file or the new one, never half of one
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        self._decisions, self._new = decisions, {}

    def _read(self, warn: bool) -> dict[str, dict[str, Any]]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        except OSError as e:
            return self._unreadable(e, warn)
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("version") != CACHE_VERSION or \
                    not isinstance(data.get("decisions"), dict):
                raise ValueError(f"not a version {CACHE_VERSION} decision cache")
            return {k: v for k, v in data["decisions"].items() if isinstance(v, dict)}
        except ValueError as e:  # json.JSONDecodeError is a ValueError
            return self._unreadable(e, warn)

    def _unreadable(self, error: Exception, warn: bool) -> dict:
        if warn:
            warnings.warn(f"mpskernels: ignoring the optimize() decision cache {self.path} ({error}); swaps are "
                          f"timed again and the file rewritten", RuntimeWarning, stacklevel=3)
        return {}
