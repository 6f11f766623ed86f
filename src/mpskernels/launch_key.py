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
    """Builds (when not built yet) and loads the C++ key in this thread; None when it cannot be built."""
    path = source()
    if path is None:
        return None
    try:
        from torch.utils import cpp_extension

        clear_stale_lock(cpp_extension)
        if not _built(cpp_extension):  # a child builds it: no torch interpreter start when it is built already
            built = subprocess.run([sys.executable, "-c", _BUILD, NAME, path], capture_output=True, text=True,
                                   start_new_session=True)  # outlives this process if it exits meanwhile
            if built.returncode != 0:
                log.info("mpskernels: the C++ launch key did not build; the Python key serves:\n%s",
                         built.stderr[-2000:])
                return None
        return cpp_extension.load(name=NAME, sources=[path], extra_cflags=["-O2"], verbose=False).key
    except Exception as e:  # noqa: BLE001 - any failure leaves the Python key, which is correct, only slower
        log.info("mpskernels: the C++ launch key is unavailable (%s: %s); the Python key serves", type(e).__name__, e)
        return None


# A build takes about 40 s on a 2-core machine; torch's build lock (a file in the build folder) left by a process
# killed mid-build would make every later cpp_extension.load() wait for it forever.
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


def _built(cpp_extension) -> bool:
    """Whether a build of the key is on disk: load() then checks it is current and imports it (after an edit of
    the source, it rebuilds in this thread)."""
    try:
        folder = cpp_extension._get_build_directory(NAME, verbose=False)  # private: any failure means "build"
    except Exception:  # noqa: BLE001
        return False
    return os.path.isfile(os.path.join(folder, f"{NAME}.so"))


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
