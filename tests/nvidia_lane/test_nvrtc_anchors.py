"""The anchors' Metal code (MLX's and PyTorch's headers, unmodified, instantiated by anchors/metal/*.metal) through
the CUDA translation and NVRTC, on machines without a GPU. Every host name must become a PTX entry.

Files the MSL front end cannot read yet are expected failures (strict: once the front end reads them, the marker
must go and the file must compile through NVRTC)."""

import pytest

from mpskernels.anchors.library import INSTANTIATIONS
from mpskernels.anchors.library import load
from mpskernels.cuda import nvrtc, nvrtc_options

pytestmark = pytest.mark.skipif(nvrtc.library() is None, reason="no NVRTC library (nvidia-cuda-nvrtc-cu12)")

FRONT_END_GAPS = {
    "mlx_binary": "array kernel parameters (constant const int64_t a_strides[2])",
    "mlx_gemv": "expressions in max_total_threads_per_threadgroup, complex.h's address-space overloads",
    "mlx_steel_attention": "expressions in max_total_threads_per_threadgroup, address-space partial "
                           "specialisations (pointer_element<device T*>)",
    "mlx_quantized": "complex.h's address-space overloads, pointer_element<device T*>",
    "mlx_softmax": "complex.h's address-space overloads (constructors collapse once address spaces are erased)",
    "mlx_logsumexp": "complex.h's address-space overloads",
    "mlx_unary": "complex.h's address-space overloads",
    "mlx_sdpa_vector": "complex.h's address-space overloads",
    "torch_prefill_attention": "expressions in max_total_threads_per_threadgroup, pointer_element<device T*>",
}
FILES = sorted(p.stem for p in INSTANTIATIONS.glob("*.metal"))


def marks(name):
    if name in FRONT_END_GAPS:
        return [pytest.mark.xfail(strict=True, reason="front end: " + FRONT_END_GAPS[name])]
    return []


@pytest.mark.parametrize("name", [pytest.param(n, marks=marks(n)) for n in FILES])
def test_anchor_instantiation_compiles_with_nvrtc(name):
    lib = load(name, "cuda")
    source = lib.translated()
    assert source.entries, f"{name} instantiates no kernel"
    ptx = nvrtc.compile_to_ptx(source.text, nvrtc_options("compute_90"), name=f"{name}.metal")
    missing = [host for host, e in source.entries.items() if f".entry {e.symbol}(" not in ptx]
    assert not missing, f"host names without a PTX entry: {missing}"
