"""The Objective-C++ bridge compiles on Linux, against the installed torch's own headers and declaration-only
stand-ins for Apple's (csrc/mps/check/), with the flags the macOS build uses: the first compile it gets is not on a
user's Mac. A misspelt Metal method, a wrong argument type and a PyTorch function that does not exist must each fail
the check, or the check proves nothing."""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
BRIDGE = ROOT / "csrc" / "mps" / "bridge.mm"
STAND_INS = ROOT / "csrc" / "mps" / "check"


def syntax_check(source: Path) -> subprocess.CompletedProcess:
    clang = shutil.which("clang++")
    assert clang, "clang++ is needed to check the Objective-C++ bridge (CI installs it with apt)"
    torch_include = Path(torch.__file__).parent / "include"
    command = [clang, "-x", "objective-c++", "-std=c++17", "-fsyntax-only", "-fblocks", "-fobjc-arc",
               "-fobjc-runtime=macosx-13.0", "-Wall", "-Werror", f"-I{STAND_INS}",
               # torch's and Python's headers as system headers: their own warnings are not the bridge's
               "-isystem", str(torch_include), "-isystem", str(torch_include / "torch" / "csrc" / "api" / "include"),
               "-isystem", sysconfig.get_paths()["include"], str(source)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_the_bridge_compiles_against_torchs_mps_headers():
    result = syntax_check(BRIDGE)
    assert result.returncode == 0, result.stderr[-4000:]


# (what the bridge says, a mistake in its place, what clang must answer)
MISTAKES = [
    ("[encoder setComputePipelineState:d.pipeline];", "[encoder setComputePipeline:d.pipeline];",
     "no known instance method for selector 'setComputePipeline:'"),
    ("[encoder setBuffer:buffer_of(t) offset:", "[encoder setBuffer:d.pipeline offset:",
     "cannot initialize a parameter of type 'id<MTLBuffer>"),
    ("at::mps::getCurrentMPSStream()", "at::mps::getCurrentStream()",
     "no member named 'getCurrentStream' in namespace 'at::mps'"),
]


def test_mistakes_in_the_bridge_fail_the_check(tmp_path):
    source = BRIDGE.read_text()
    for right, wrong, _ in MISTAKES:
        assert source.count(right) == 1, f"the bridge no longer says {right!r}: update MISTAKES"
        source = source.replace(right, wrong)
    broken = tmp_path / "bridge.mm"
    broken.write_text(source)  # one compile for all three: each is reported at its own line
    result = syntax_check(broken)
    assert result.returncode != 0
    for _, _, answer in MISTAKES:
        assert answer in result.stderr, f"clang did not say {answer!r}:\n{result.stderr[-3000:]}"
