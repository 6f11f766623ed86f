"""Importing a C++ extension that torch.utils.cpp_extension built earlier, straight from its file: what
cpp_extension.load() ends with, without its build step (which takes the build folder's lock, and waits forever
on one a killed build left behind)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch  # noqa: F401 - every extension links against libtorch, which must be loaded first


def import_built(name: str, path: str | Path):
    """The extension module `name` built at `path` (a .so file)."""
    spec = importlib.util.spec_from_file_location(name, str(path))
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
