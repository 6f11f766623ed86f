"""Shared fixtures for the mpskernels test suite."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

# Every emulated dispatch in the tests runs on guarded buffer copies: a kernel that reads or writes past a
# buffer fails its test instead of passing on whatever memory lies there.
os.environ.setdefault("MPSKERNELS_EMULATOR_BOUNDS", "1")

EMULATOR_MSL_DIR = Path(__file__).parent / "emulator" / "msl"


def pytest_configure(config):
    """The launch cache's C++ key, built (once per machine) and installed before the first test: every test runs
    with the same key, instead of the background build switching keys in the middle of whichever test runs then."""
    from mpskernels import cxx_host, registry

    cxx_host.start(registry.install_host_path, background=False)

_libraries: dict[str, object] = {}
_lock = threading.Lock()


def load_msl(name: str):
    """The compiled emulator library of tests/emulator/msl/<name>, compiled once per test session."""
    from mpskernels.emulator import compile_file

    with _lock:
        lib = _libraries.get(name)
        if lib is None:
            lib = _libraries[name] = compile_file(EMULATOR_MSL_DIR / name)
        return lib


@pytest.fixture(scope="session")
def msl():
    """`msl("file.metal")` compiles (once per session) a conformance kernel file from tests/emulator/msl/."""
    return load_msl


def run_with_timeout(fn, timeout: float = 30.0):
    """Runs fn() on a daemon thread; returns its exception (or None) and fails the test if it does not finish."""
    box: dict[str, BaseException | None] = {"error": None}

    def target():
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        pytest.fail(f"the dispatch did not finish within {timeout} s (hang instead of an error)")
    return box["error"]


@pytest.fixture
def no_hang():
    """`no_hang(fn)` runs fn, fails the test if it hangs, and returns the exception fn raised (or None)."""
    return run_with_timeout


@pytest.fixture(autouse=True)
def _seed_torch():
    """Every test starts from the same torch RNG state, so random inputs are reproducible."""
    import torch

    torch.manual_seed(0)
