"""The emulator's conformance kernels (tests/emulator/msl) through the CUDA translation and NVRTC, without a GPU:
the CUDA shim must accept what the emulator's accepts. Files using what the lane does not model yet (packed
types and matrices) or what NVRTC refuses are listed with the reason."""

import pytest

from conftest import EMULATOR_MSL_DIR
from mpskernels.cuda import nvrtc, nvrtc_options
from mpskernels.cuda.library import compile_file

pytestmark = pytest.mark.skipif(nvrtc.library() is None, reason="no NVRTC library (nvidia-cuda-nvrtc-cu12)")

NOT_IN_THE_LANE = {
    "layout.metal": "packed vectors and float2x3-style matrices",
    "stdlib_clang.metal": "NVRTC refuses GNU array-range designators ({[0 ... 7] = x}), at the .metal line",
    "stdlib_half_conversions.metal": "Metal's half/bfloat conversions in ?:, to integers and from classes are the "
                                     "emulator's (its ?: rewrite and shim); the CUDA shim refuses them at the line",
}
FILES = sorted(p.name for p in EMULATOR_MSL_DIR.glob("*.metal"))


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=NOT_IN_THE_LANE[n]))
                                  if n in NOT_IN_THE_LANE else n for n in FILES])
def test_conformance_kernels_compile_with_nvrtc(name):
    source = compile_file(EMULATOR_MSL_DIR / name).translated()
    ptx = nvrtc.compile_to_ptx(source.text, nvrtc_options("compute_90"), name=name)
    assert all(f".entry {e.symbol}(" in ptx for e in source.entries.values())
