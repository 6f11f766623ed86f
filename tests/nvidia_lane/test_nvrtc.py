"""Every shipped kernel's CUDA translation compiles with NVRTC, on machines without a GPU (optional: skipped when
no NVRTC library is installed; `pip install nvidia-cuda-nvrtc-cu12` provides one). Each entry must keep a store
to device memory in its PTX: a translation the compiler can prove does nothing compiles just as cleanly."""

import re

import pytest

from mpskernels._paths import metal_dir
from mpskernels.cuda import cuda_source, nvrtc_options
from mpskernels.cuda import nvrtc
from mpskernels.cuda.source import unit

pytestmark = pytest.mark.skipif(nvrtc.library() is None, reason="no NVRTC library (nvidia-cuda-nvrtc-cu12)")

SOURCES = sorted(p.name for p in metal_dir().glob("*.metal"))


def entry_bodies(ptx: str) -> dict[str, str]:
    parts = re.split(r"\.entry (\w+)\(", ptx)
    return dict(zip(parts[1::2], parts[2::2]))


@pytest.mark.parametrize("source", SOURCES)
def test_translation_compiles_and_every_entry_stores(source):
    constants = unit(source).program.constants
    every_bool = tuple((n, True) for n, c in sorted(constants.items()) if c.type_text.split()[-1] == "bool")
    cuda = cuda_source(source, every_bool)
    ptx = nvrtc.compile_to_ptx(cuda.text, nvrtc_options("compute_90"), name=source)
    bodies = entry_bodies(ptx)
    assert set(bodies) == {e.symbol for e in cuda.entries.values()}
    # a store to global memory, or through a generic pointer (when the destination is picked at run time)
    stores = re.compile(r"\bst\.(?!local|param|shared)")
    empty = [host for host, e in cuda.entries.items() if not stores.search(bodies[e.symbol])]
    assert not empty, f"entries whose PTX stores nothing: {empty}"


def test_compile_errors_point_at_metal_lines():
    from mpskernels.msl import Specialization, read_source
    from mpskernels.cuda import to_cuda

    u = read_source("#include <metal_stdlib>\nusing namespace metal;\n\nkernel void k(device float* o [[buffer(0)]]) "
                    "{\n  o[0] = undefined_name;\n}\n", "broken.metal")
    with pytest.raises(nvrtc.NvrtcError, match=r"broken\.metal\(5\).*undefined_name"):
        nvrtc.compile_to_ptx(to_cuda(u.text, u.program, Specialization()).text, nvrtc_options("compute_90"))
