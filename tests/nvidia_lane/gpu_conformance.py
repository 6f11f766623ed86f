"""Shared by the test_gpu_conformance_*.py modules: the `msl` fixture they override, returning .metal files compiled
for the GPU (mpskernels.cuda.library) instead of the emulator, and the skip when there is no GPU."""

import pytest
import torch

from conftest import EMULATOR_MSL_DIR

try:
    import cupy  # noqa: F401

    HAVE_GPU = torch.cuda.is_available()
except ImportError:
    HAVE_GPU = False

needs_gpu = pytest.mark.skipif(not HAVE_GPU, reason="needs CuPy and a CUDA device")


@pytest.fixture(scope="module")
def msl():
    from mpskernels.cuda.library import compile_file

    return lambda name: compile_file(EMULATOR_MSL_DIR / name)
