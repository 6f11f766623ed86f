"""The launch cache's key in C++ (csrc/launch_key/launch_key.cpp), built at first use, with the pure-Python key
(registry.key_function) serving until it is ready, or for good when it cannot be built.

The Python key reads five attributes of every tensor and hashes the tuples they make, about half a microsecond a
tensor: most of the host work of a repeated call to a multi-tensor op (rope, add_rms_norm, attention). The C++
key reads the same from the C++ tensor in one call.

It is built by torch.utils.cpp_extension with the compiler the emulator already needs, in a child process started
from a background thread: a first build takes tens of seconds, which no op call waits for, and a process that
exits meanwhile leaves the child to finish (torch's build lock would otherwise be left held). Later processes
load the cached build. MPSKERNELS_CXX_KEY=0 keeps the Python key.
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

NAME = "mpskernels_launch_key"
_BUILD = """
import sys, torch.utils.cpp_extension as ext
ext.load(name=sys.argv[1], sources=[sys.argv[2]], extra_cflags=["-O2"], verbose=False)
"""
_started = False
_lock = threading.Lock()
_thread: threading.Thread | None = None
installed = False  # whether the C++ key serves the op calls now


def source() -> str | None:
    from ._paths import _data_dir

    try:
        path = _data_dir("csrc") / "launch_key" / "launch_key.cpp"
    except FileNotFoundError:
        return None
    return str(path) if path.is_file() else None


def enabled() -> bool:
    return os.environ.get("MPSKERNELS_CXX_KEY", "1") != "0"


@functools.lru_cache(maxsize=1)
def load() -> Callable[..., Any] | None:
    """The C++ key, built first when the build on disk is missing or older than its source; None when it cannot be
    had. This process never takes torch's build lock: a child builds (waited for at most BUILD_WAIT_S, then left
    to finish for later processes) and this process imports the built module directly, so a lock left held by a
    killed build can delay the C++ key, never an op call or a test session."""
    path = source()
    if path is None:
        return None
    try:
        from torch.utils import cpp_extension

        from ._extensions import import_built

        folder = cpp_extension._get_build_directory(NAME, verbose=False)  # private: any failure means no C++ key
        built = os.path.join(folder, f"{NAME}.so")
        if not _current(built, path):
            clear_stale_lock(cpp_extension)
            if not _build_in_child(path) or not _current(built, path):
                return None
        return import_built(NAME, built).key
    except Exception as e:  # noqa: BLE001 - any failure leaves the Python key, which is correct, only slower
        log.info("mpskernels: the C++ launch key is unavailable (%s: %s); the Python key serves", type(e).__name__, e)
        return None


# A first build takes about 40 s on a 2-core machine, under load a few times that.
BUILD_WAIT_S = 300


def _build_in_child(path: str) -> bool:
    """Builds the key in a child process; whether it finished, and succeeded, within BUILD_WAIT_S."""
    child = subprocess.Popen([sys.executable, "-c", _BUILD, NAME, path], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)  # outlives this process
    try:
        _, stderr = child.communicate(timeout=BUILD_WAIT_S)
    except subprocess.TimeoutExpired:  # waiting on a lock, or a slow machine: it finishes for the next process
        log.info("mpskernels: the C++ launch key is still building after %d s; the Python key serves", BUILD_WAIT_S)
        return False
    if child.returncode != 0:
        log.info("mpskernels: the C++ launch key did not build; the Python key serves:\n%s", stderr[-2000:])
        return False
    return True


def _current(built: str, source_path: str) -> bool:
    """Whether a build is on disk and no older than its source (an edited source is rebuilt)."""
    try:
        return os.path.getmtime(built) >= os.path.getmtime(source_path)
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
            log.info("mpskernels: removed a stale build lock of the C++ launch key (%s)", lock)
            return True
    except OSError:  # no lock (the usual case), or another process removed it first
        pass
    except Exception:  # noqa: BLE001 - torch's private helper changed: leave the lock to torch
        pass
    return False


def start(install: Callable[[Callable[..., Any]], None], background: bool = True) -> None:
    """Once per process: builds or loads the C++ key and hands it to `install`, in a background thread (no op call
    waits), or in this thread (`background=False`: a test session or a benchmark that wants the same key from its
    first call to its last, not a switch in the middle)."""
    global _started, _thread
    if _started:
        return
    with _lock:
        if _started or not enabled():
            return
        _started = True

    def work() -> None:
        global installed
        key = load()
        if key is not None:
            install(key)
            installed = True

    if not background:
        work()
        return
    _thread = threading.Thread(target=work, name="mpskernels-launch-key", daemon=True)
    _thread.start()


def wait(timeout: float | None = None) -> bool:
    """Waits for the build started by `start` (benchmarks measure the repeated path as it will run); whether
    the C++ key serves now."""
    if _thread is not None:
        _thread.join(timeout)
    return installed
