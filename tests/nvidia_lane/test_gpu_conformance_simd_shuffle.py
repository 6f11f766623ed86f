"""The emulator's conformance tests for simd_shuffle.metal, run on an NVIDIA GPU through the CUDA translation."""

from emulator.test_conformance_simd_shuffle import *  # noqa: F401,F403  (the tests and their `lib` fixture)
from nvidia_lane.gpu_conformance import msl, needs_gpu  # noqa: F401  (msl: the GPU-backed loader)

pytestmark = needs_gpu

# Reading an inactive or nonexistent lane is undefined in Metal; the emulator makes it NaN so kernels that do it
# fail their tests, while CUDA returns some lane's value. Those checks stay emulator-only.
del test_shuffle_from_inactive_lane_is_poison, test_shuffle_down_past_partial_group_is_poison  # noqa: F821
del test_quad_functions  # noqa: F821  (its partial quads assert the emulator's poison too)
