"""The Objective-C++ bridge is compiled at first use against the running torch (runtime/bridge_build.py), cached per
torch version, macOS version and source; any failure gives the metal-jit backend and one log line. No Mac here:
the compiler (torch.utils.cpp_extension.load) is replaced by fakes that record how they are called, and the cached
build that is imported is a real (tiny) Python extension compiled here."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import sysconfig
import types

import pytest
import torch
import torch.utils.cpp_extension

from mpskernels.runtime import bridge_build, metal
from mpskernels.runtime.bridge_build import BUILT, CACHED, EXTENSION, FAILED, NOT_ATTEMPTED, cache_key

SOURCE = b"// bridge.mm\n"


def test_the_cache_key_changes_with_torch_macos_and_source():
    key = cache_key("2.8.0", "15.1", SOURCE)
    assert key == cache_key("2.8.0", "15.1", SOURCE)
    assert key.startswith("torch2.8.0-macos15.1-")
    others = {cache_key("2.9.0", "15.1", SOURCE), cache_key("2.8.0", "15.2", SOURCE),
              cache_key("2.8.0", "15.1", SOURCE + b" "), cache_key("2.8.0+cpu", "15.1", SOURCE)}
    assert key not in others and len(others) == 4


@pytest.fixture
def mac(monkeypatch, tmp_path):
    """A Mac with MPS as far as bridge_build can tell, a bridge source in tmp_path and the cache folder under it."""
    source = tmp_path / "bridge.mm"
    source.write_bytes(SOURCE)
    monkeypatch.setattr(bridge_build, "on_macos", lambda: True)
    monkeypatch.setattr(bridge_build, "macos_version", lambda: "15.1")
    monkeypatch.setattr(bridge_build, "bridge_source", lambda: source)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(torch, "__version__", "2.8.0")
    monkeypatch.setenv("MPSKERNELS_CACHE_DIR", str(tmp_path / "cache"))
    calls = []

    def load(**kwargs):
        calls.append(kwargs)
        return types.SimpleNamespace(launch="compiled")

    monkeypatch.setattr(torch.utils.cpp_extension, "load", load)
    bridge_build.bridge.cache_clear()
    yield types.SimpleNamespace(source=source, calls=calls, cache=tmp_path / "cache" / "mps-bridge")
    bridge_build.bridge.cache_clear()


def test_the_first_use_compiles_the_bridge_into_the_keyed_cache_folder(mac):
    built = bridge_build.build()
    assert built.how == BUILT and built.module.launch == "compiled"
    folder = mac.cache / cache_key("2.8.0", "15.1", SOURCE)
    assert built.detail == str(folder) and folder.is_dir()
    assert mac.calls == [dict(name=EXTENSION, sources=[str(mac.source)], extra_cflags=["-fobjc-arc"],
                              extra_ldflags=["-framework", "Metal", "-framework", "Foundation"],
                              build_directory=str(folder), verbose=False)]


def tiny_extension(folder, answer: int):
    """A real Python extension named like the bridge, as `load` leaves it in its build folder."""
    folder.mkdir(parents=True)
    c = folder / "ext.c"
    c.write_text(f"""#include <Python.h>
static struct PyModuleDef def = {{PyModuleDef_HEAD_INIT, "{EXTENSION}", 0, -1, 0}};
PyMODINIT_FUNC PyInit_{EXTENSION}(void) {{
  PyObject* m = PyModule_Create(&def);
  PyModule_AddIntConstant(m, "answer", {answer});
  return m;
}}
""")
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    subprocess.run([cc, "-shared", "-fPIC", "-I", sysconfig.get_paths()["include"], str(c), "-o",
                    str(folder / f"{EXTENSION}.so")], check=True)


def test_a_cached_build_is_imported_without_compiling(mac, monkeypatch):
    tiny_extension(mac.cache / cache_key("2.8.0", "15.1", SOURCE), answer=42)
    monkeypatch.delitem(sys.modules, EXTENSION, raising=False)
    built = bridge_build.build()
    assert (built.how, built.module.answer) == (CACHED, 42)
    assert mac.calls == []


def test_a_build_for_another_torch_is_not_used(mac, monkeypatch):
    """What an install-time build could not promise: the bridge in use was compiled against this process's torch.
    A cached build for another torch version, and a prebuilt `mpskernels._mps_bridge` left by an older install,
    are both ignored."""
    tiny_extension(mac.cache / cache_key("2.7.1", "15.1", SOURCE), answer=1)
    monkeypatch.setitem(sys.modules, "mpskernels._mps_bridge", types.SimpleNamespace(launch="stale prebuilt"))
    assert metal._bridge().launch == "compiled"
    assert mac.calls[0]["build_directory"] == str(mac.cache / cache_key("2.8.0", "15.1", SOURCE))


FAILURES = [
    RuntimeError("Error building extension 'mpskernels_mps_bridge': bridge.mm:12: error: unknown type name"),
    RuntimeError("Ninja is required to load C++ extensions"),
    OSError("[Errno 2] No such file or directory: 'clang++'"),
    subprocess.CalledProcessError(1, ["ninja", "-v"]),
    ImportError("dlopen(mpskernels_mps_bridge.so): symbol not found in flat namespace"),
]


@pytest.mark.parametrize("failure", FAILURES, ids=lambda e: type(e).__name__)
def test_any_failure_gives_metal_jit_and_one_log_line(mac, monkeypatch, caplog, failure):
    def load(**kwargs):
        raise failure

    monkeypatch.setattr(torch.utils.cpp_extension, "load", load)
    with caplog.at_level(logging.DEBUG, logger="mpskernels"):
        built = bridge_build.bridge()
        assert bridge_build.bridge() is built  # once per process
        reason = metal.MetalBackend().unavailable()
    assert built.module is None and built.how == FAILED and type(failure).__name__ in built.detail
    assert len(caplog.records) == 1
    line = caplog.records[0].getMessage()
    assert type(failure).__name__ in line and "metal-jit" in line and "compile_shader" in line
    assert "\n" not in line
    assert reason.startswith("the Objective-C++ bridge is not built (failed: ")


def test_a_broken_cached_build_fails_cleanly(mac, caplog):
    folder = mac.cache / cache_key("2.8.0", "15.1", SOURCE)
    folder.mkdir(parents=True)
    (folder / f"{EXTENSION}.so").write_bytes(b"not a shared library")
    with caplog.at_level(logging.WARNING, logger="mpskernels"):
        built = bridge_build.build()
    assert built.how == FAILED and "ImportError" in built.detail and len(caplog.records) == 1
    assert mac.calls == []


@pytest.mark.parametrize("where", ["linux", "mac without MPS"])
def test_nothing_is_attempted_off_macos_or_without_mps(mac, monkeypatch, caplog, where):
    if where == "linux":
        monkeypatch.setattr(bridge_build, "on_macos", lambda: sys.platform == "darwin")
    else:
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(bridge_build, "bridge_source", lambda: pytest.fail("the source was looked for"))
    with caplog.at_level(logging.DEBUG, logger="mpskernels"):
        built = bridge_build.build()
    assert (built.module, built.how) == (None, NOT_ATTEMPTED)
    assert mac.calls == [] and not caplog.records and not mac.cache.exists()


def test_doctor_reports_how_the_bridge_came_to_be(mac):
    from mpskernels.checkup import _bridge

    check = _bridge()
    assert check.name == "Objective-C++ bridge build" and check.ok is True
    assert check.found == f"built at first use: {mac.cache / cache_key('2.8.0', '15.1', SOURCE)}"


def test_the_installed_package_ships_the_bridge_source():
    from mpskernels._paths import bridge_source

    assert bridge_source().read_text().startswith("// The Mac-only layer")


def test_a_compile_error_is_reported_by_its_first_error_line():
    from mpskernels.runtime.bridge_build import failure_reason

    message = ("Error building extension 'mpskernels_mps_bridge': [1/2] c++ -MMD -MF bridge.o.d " + "-I/x " * 200 +
               "\nFAILED: bridge.o\n/tmp/bridge.mm:41:3: error: use of undeclared identifier 'MTLSizeMak'\n"
               "1 error generated.\n")
    assert failure_reason(RuntimeError(message)) == (
        "RuntimeError: /tmp/bridge.mm:41:3: error: use of undeclared identifier 'MTLSizeMak'")
    assert failure_reason(OSError("no clang++")) == "OSError: no clang++"
