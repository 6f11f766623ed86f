"""`mpskernels doctor`: one line per check, the backend optimize() would use, exit code 0 only where a GPU kernel
backend can run."""

import json

from mpskernels import runtime
from mpskernels.checkup import diagnose
from mpskernels.cli import main


class UsableMetal:
    """A GPU backend that says it can run (what the Mac's metal backend says there), for CPU tensors."""

    name = "metal"
    device_types = ("cpu",)

    def unavailable(self):
        return None


def test_on_linux_no_gpu_backend_runs_and_optimize_would_swap_nothing(capsys, monkeypatch):
    monkeypatch.delenv("MPSKERNELS_BACKEND", raising=False)
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "backend metal (Objective-C++ bridge)" in out and "MPS is not available" in out
    assert "backend emulator (MSL CPU emulator)           usable" in out
    assert "no kernel backend runs on cpu tensors: optimize() swaps nothing" in out


def test_a_forced_emulator_is_named_as_correctness_only(monkeypatch):
    monkeypatch.setenv("MPSKERNELS_BACKEND", "emulator")
    would = diagnose()[-1]
    assert would.found == "emulator on cpu tensors (MPSKERNELS_BACKEND): correctness only, no timing"
    assert would.ok is False


def test_a_usable_gpu_backend_exits_0_and_shows_in_the_json(capsys, monkeypatch):
    monkeypatch.delenv("MPSKERNELS_BACKEND", raising=False)
    runtime.unavailable.cache_clear()
    monkeypatch.setitem(runtime.BACKENDS, "metal", UsableMetal())
    monkeypatch.setitem(runtime.AUTOMATIC, "cpu", ("metal",))
    try:
        assert main(["doctor", "--json"]) == 0
    finally:
        runtime.unavailable.cache_clear()
    report = json.loads(capsys.readouterr().out)
    checks = {c["name"]: c for c in report["checks"]}
    assert report["gpu_backend_usable"] is True
    assert checks["optimize() would use"]["found"].startswith("metal on cpu tensors: timed swaps")
    assert checks["backend metal (Objective-C++ bridge)"]["ok"] is True
