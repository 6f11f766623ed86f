"""The emulator's conformance tests for what real headers use of <metal_stdlib> (stdlib_*.metal: the __metal_*
intrinsics, overload sets, half conversions, swizzles and brace initialisers), on an NVIDIA GPU through the CUDA
translation."""

from emulator.test_conformance_stdlib import *  # noqa: F401,F403  (the tests and their `lib` fixture)
from nvidia_lane.gpu_conformance import msl, needs_gpu  # noqa: F401  (msl: the GPU-backed loader)

pytestmark = needs_gpu
