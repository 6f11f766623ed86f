"""The emulator's conformance tests for what real headers use of <metal_stdlib> (stdlib_*.metal: the __metal_*
intrinsics, overload sets, half conversions, swizzles and brace initialisers), on an NVIDIA GPU through the CUDA
translation."""

from emulator.test_conformance_stdlib import *  # noqa: F401,F403  (the tests and their `lib` fixture)
from nvidia_lane.gpu_conformance import msl, needs_gpu  # noqa: F401  (msl: the GPU-backed loader)

pytestmark = needs_gpu

# The files the lane refuses at their .metal lines (test_nvrtc_conformance's NOT_IN_THE_LANE checks each refusal):
# GNU array-range designators, and Metal's half/bfloat conversion rules, which only the emulator models so far.
del test_stdlib_clang_extensions, test_stdlib_half_conversions, test_conditional_threadgroup_bound  # noqa: F821
