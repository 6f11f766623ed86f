"""The emulator's conformance tests for what real headers use of <metal_stdlib> (stdlib_*.metal: the __metal_*
intrinsics, overload sets, half conversions, swizzles and brace initialisers), on an NVIDIA GPU through the CUDA
translation."""

from emulator.test_conformance_stdlib import *  # noqa: F401,F403  (the tests and their `lib` fixture)
from nvidia_lane.gpu_conformance import msl, needs_gpu  # noqa: F401  (msl: the GPU-backed loader)

pytestmark = needs_gpu

# NVRTC refuses GNU array-range designators ({[0 ... 7] = x}) at the .metal line; test_nvrtc_conformance checks that
# refusal (NOT_IN_THE_LANE), so the emulator's run of that file is not repeated here.
del test_stdlib_clang_extensions  # noqa: F821
