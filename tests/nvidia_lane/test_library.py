"""mpskernels.cuda.library: compile_file with include dirs and defines (as the anchors' instantiation files need),
and prepare(), the launch-only path the lane times. The translation compiles with NVRTC on machines without a GPU;
the launches run where there is one."""

from pathlib import Path

import pytest
import torch

from mpskernels.cuda import nvrtc, nvrtc_options
from mpskernels.cuda.library import compile_file
from mpskernels.msl import MSLCompileError

HERE = Path(__file__).resolve().parent / "metal"
try:
    import cupy  # noqa: F401

    HAVE_GPU = torch.cuda.is_available()
except ImportError:
    HAVE_GPU = False
needs_gpu = pytest.mark.skipif(not HAVE_GPU, reason="needs CuPy and a CUDA device")
needs_nvrtc = pytest.mark.skipif(nvrtc.library() is None, reason="no NVRTC library (nvidia-cuda-nvrtc-cu12)")


def scale_library():
    return compile_file(HERE / "scale.metal", include_dirs=[HERE / "include"], defines={"LANE_OFFSET": "0.5f"})


def test_include_dirs_and_defines_reach_the_preprocessor():
    lib = scale_library()
    assert set(lib.kernels) == {"scale_add_float", "scale_add_half"}
    assert "0.5f" in lib.translated().text
    with pytest.raises(MSLCompileError, match="lane/scale.h"):
        compile_file(HERE / "scale.metal")  # without the include dir the header is not found


@needs_nvrtc
def test_translation_with_includes_compiles_with_nvrtc():
    lib = scale_library()
    source = lib.translated()
    ptx = nvrtc.compile_to_ptx(source.text, nvrtc_options("compute_90"))
    assert all(f".entry {e.symbol}(" in ptx for e in source.entries.values())


def test_prepare_refuses_what_it_would_have_to_copy():
    lib = scale_library()
    with pytest.raises(TypeError, match="contiguous CUDA tensors"):
        lib.prepare("scale_add_float", torch.zeros(4), torch.zeros(4), 2.0, threads=4, group_size=4)
    with pytest.raises(KeyError, match="no kernel 'nope'"):
        lib.prepare("nope", threads=1, group_size=1)


@needs_gpu
def test_prepared_launch_only_launches_and_can_rerun():
    lib = scale_library()
    x = torch.arange(1000, device="cuda", dtype=torch.float32)
    y = torch.full_like(x, float("nan"))
    launch = lib.prepare("scale_add_float", x, y, 2.0, threads=1000, group_size=256)
    launch()
    torch.cuda.synchronize()
    torch.testing.assert_close(y, x * 2 + 0.5)
    x.fill_(1.0)  # the launch reads the bound tensors' current contents
    launch()
    torch.cuda.synchronize()
    torch.testing.assert_close(y, torch.full_like(x, 2.5))


@needs_gpu
def test_dispatch_still_copies_cpu_arguments_there_and_back():
    lib = scale_library()
    x = torch.arange(100, dtype=torch.float16)
    y = torch.zeros(100, dtype=torch.float16)
    lib.dispatch("scale_add_half", x, y, 3.0, threads=100, group_size=32)
    torch.testing.assert_close(y, (x.float() * 3 + 0.5).half())


def test_scalars_pack_as_the_fixed_width_type_the_parameter_declares():
    from mpskernels.cuda.library import scalar_type

    assert scalar_type("const constant int64_t&", -3) == "long"  # 8 bytes, sign-extended
    assert scalar_type("constant uint32_t&", 7) == "uint"
    assert scalar_type("constant size_t&", 7) == "ulong"
    assert scalar_type("constant float&", 1) == "float"
    assert scalar_type("constant T&", 1) == "int" and scalar_type("constant T&", 1.5) == "float"
