"""A built wheel carries the Metal sources and the emulator headers, and builds nothing native on Linux."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q", "-w", str(out)],
        check=True,
    )
    (path,) = out.glob("mpskernels-*.whl")
    return path


def test_wheel_ships_metal_sources_and_emulator_headers(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for metal in (ROOT / "metal").glob("*.metal"):
        assert f"mpskernels/_data/metal/{metal.name}" in names
    for header in ("shim.h", "runtime.h", "simd.h", "simdgroup_matrix.h", "fiber.h", "types.h", "math.h", "atomic.h"):
        assert f"mpskernels/_data/csrc/emu/mtl/{header}" in names
    assert "mpskernels/_data/csrc/emu/stub/metal_stdlib" in names
    assert "mpskernels/_data/csrc/emu/check/metal_check.h" in names  # the address-space check's header
    assert "mpskernels/_data/csrc/mps/bridge.mm" in names  # compiled on a Mac at first use
    assert "mpskernels/_data/csrc/host/op_kernels.cpp" in names  # the C++ host path, built at first use
    assert not [n for n in names if n.startswith("mpskernels/_data/csrc/mps/check/")]  # Linux-only stand-ins
    for shim in (ROOT / "csrc" / "cuda" / "mtlcuda").glob("*.cuh"):  # the NVIDIA lane's CUDA shim
        assert f"mpskernels/_data/csrc/cuda/mtlcuda/{shim.name}" in names


def test_wheel_ships_the_generation_prompts_example(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for part in ("problem.py", "kernel.metal", "declaration.json"):
        assert f"mpskernels/generation/examples/rms_norm/{part}" in names


def test_wheel_is_pure_python_on_linux(wheel):
    # No compiled extension: the Objective-C++ bridge is compiled on a Mac at first use, from its shipped source.
    assert wheel.name.endswith("-py3-none-any.whl")
    assert not [n for n in zipfile.ZipFile(wheel).namelist() if n.endswith((".so", ".dylib", ".o"))]
