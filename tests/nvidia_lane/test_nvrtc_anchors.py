"""The anchors' Metal code (MLX's and PyTorch's headers, unmodified, instantiated by anchors/metal/*.metal) through
the CUDA translation and NVRTC, on machines without a GPU. Every host name must become a PTX entry. (PyTorch's
prefill attention, 126 entries, takes NVRTC a few minutes on one core.)"""

import pytest

from mpskernels.anchors.library import INSTANTIATIONS
from mpskernels.anchors.library import load
from mpskernels.cuda import nvrtc, nvrtc_options

pytestmark = pytest.mark.skipif(nvrtc.library() is None, reason="no NVRTC library (nvidia-cuda-nvrtc-cu12)")

FILES = sorted(p.stem for p in INSTANTIATIONS.glob("*.metal"))


@pytest.mark.parametrize("name", FILES)
def test_anchor_instantiation_compiles_with_nvrtc(name):
    lib = load(name, "cuda")
    source = lib.translated()
    assert source.entries, f"{name} instantiates no kernel"
    ptx = nvrtc.compile_to_ptx(source.text, nvrtc_options("compute_90"), name=f"{name}.metal")
    missing = [host for host, e in source.entries.items() if f".entry {e.symbol}(" not in ptx]
    assert not missing, f"host names without a PTX entry: {missing}"
