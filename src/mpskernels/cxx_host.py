"""The repeated call's host work in C++ (csrc/host/), built at first use, with the Python path serving until it is
ready, or for good when it cannot be built. Two pieces, handed to registry.install_host_path:

- the launch cache's key (launch_key.cpp) for the Python kernels and mpskernels.ops: the Python key
  (registry.key_function) reads five attributes of every tensor and hashes the tuples they make, about half a
  microsecond a tensor; the C++ key reads the same from the C++ tensor in one call;
- the dispatcher's kernels for torch.ops.mpskernels (op_kernels.cpp): a repeated call keys, allocates its outputs
  and reaches the backend launch without the dispatcher's trip into a Python kernel.

It is built by torch.utils.cpp_extension with the compiler the emulator already needs, in a child process started
from a background thread: a first build takes tens of seconds, which no op call waits for, and a process that
exits meanwhile leaves the child to finish (torch's build lock would otherwise be left held). Later processes
load the cached build. MPSKERNELS_CXX_KEY=0 keeps the Python path.
"""

from __future__ import annotations

import functools
import logging
import os
import subprocess
import sys
import threading
import time
from typing import Any, Callable

log = logging.getLogger("mpskernels")

NAME = "mpskernels_host"
FILES = ("module.cpp", "launch_key.cpp", "op_kernels.cpp", "host.h")  # a build older than any is rebuilt
_BUILD = """
import sys, torch.utils.cpp_extension as ext
ext.load(name=sys.argv[1], sources=sys.argv[2:], extra_cflags=["-O2"], verbose=False)
"""
_started = False
_lock = threading.Lock()
_thread: threading.Thread | None = None
installed = False  # whether the C++ path serves the op calls now


def sources() -> list[str] | None:
    """The extension's files (FILES), or None when any is missing."""
    from ._paths import _data_dir

    try:
        folder = _data_dir("csrc") / "host"
    except FileNotFoundError:
        return None
    paths = [folder / name for name in FILES]
    return [str(p) for p in paths] if all(p.is_file() for p in paths) else None


def enabled() -> bool:
    return os.environ.get("MPSKERNELS_CXX_KEY", "1") != "0"


@functools.lru_cache(maxsize=1)
def load() -> Any | None:
    """The built extension (its `key`, `install`, `clear`, `repeated_calls`), built first when the build on disk is
    missing or older than any source; None when it cannot be had. This process never takes torch's build lock: a
    child builds (waited for at most BUILD_WAIT_S, then left to finish for later processes) and this process
    imports the built module directly, so a lock left held by a killed build can delay the C++ path, never an op
    call or a test session."""
    paths = sources()
    if paths is None:
        return None
    try:
        from torch.utils import cpp_extension

        from ._extensions import import_built

        folder = cpp_extension._get_build_directory(NAME, verbose=False)  # private: any failure means no C++ path
        built = os.path.join(folder, f"{NAME}.so")
        if not _current(built, paths):
            clear_stale_lock(cpp_extension)
            if not _build_in_child(paths) or not _current(built, paths):
                return None
        return import_built(NAME, built)
    except Exception as e:  # noqa: BLE001 - any failure leaves the Python path, which is correct, only slower
        log.info("mpskernels: the C++ host path is unavailable (%s: %s); the Python path serves", type(e).__name__, e)
        return None


# A first build takes about a minute on a 2-core machine, under load a few times that.
BUILD_WAIT_S = 300


def _build_in_child(paths: list[str]) -> bool:
    """Builds the extension in a child process; whether it finished, and succeeded, within BUILD_WAIT_S."""
    compiled = [p for p in paths if p.endswith(".cpp")]
    child = subprocess.Popen([sys.executable, "-c", _BUILD, NAME, *compiled], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)  # outlives this process
    try:
        _, stderr = child.communicate(timeout=BUILD_WAIT_S)
    except subprocess.TimeoutExpired:  # waiting on a lock, or a slow machine: it finishes for the next process
        log.info("mpskernels: the C++ host path is still building after %d s; the Python path serves", BUILD_WAIT_S)
        return False
    if child.returncode != 0:
        log.info("mpskernels: the C++ host path did not build; the Python path serves:\n%s", stderr[-2000:])
        return False
    return True


def _current(built: str, paths: list[str]) -> bool:
    """Whether a build is on disk and no older than any of its sources (an edited source is rebuilt)."""
    try:
        return os.path.getmtime(built) >= max(os.path.getmtime(p) for p in paths)
    except OSError:
        return False


# torch's build lock (a file in the build folder) left by a process killed mid-build would make every later build
# wait for it forever.
STALE_LOCK_S = 600


def clear_stale_lock(cpp_extension, now: float | None = None) -> bool:
    """Removes the build folder's lock file when it is older than STALE_LOCK_S (its builder is gone); whether it
    did."""
    try:
        lock = os.path.join(cpp_extension._get_build_directory(NAME, verbose=False), "lock")
        if (now or time.time()) - os.path.getmtime(lock) > STALE_LOCK_S:
            os.remove(lock)
            log.info("mpskernels: removed a stale build lock of the C++ host path (%s)", lock)
            return True
    except OSError:  # no lock (the usual case), or another process removed it first
        pass
    except Exception:  # noqa: BLE001 - torch's private helper changed: leave the lock to torch
        pass
    return False


def start(install: Callable[[Any], None], background: bool = True) -> None:
    """Once per process: builds or loads the extension and hands it to `install`, in a background thread (no op
    call waits), or in this thread (`background=False`: a test session or a benchmark that wants the same path
    from its first call to its last, not a switch in the middle)."""
    global _started, _thread
    if _started:
        return
    with _lock:
        if _started or not enabled():
            return
        _started = True

    def work() -> None:
        global installed
        module = load()
        if module is not None:
            install(module)
            installed = True

    if not background:
        work()
        return
    _thread = threading.Thread(target=work, name="mpskernels-cxx-host", daemon=True)
    _thread.start()


def wait(timeout: float | None = None) -> bool:
    """Waits for the build started by `start` (benchmarks measure the repeated path as it will run); whether
    the C++ path serves now."""
    if _thread is not None:
        _thread.join(timeout)
    return installed
