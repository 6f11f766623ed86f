"""The emulator's conformance tests for atomics.metal (device and threadgroup atomics, compare-exchange loops,
float adds, bit operations), on an NVIDIA GPU through the CUDA translation."""

from emulator.test_conformance_atomics import *  # noqa: F401,F403  (the tests and their `lib` fixture)
from nvidia_lane.gpu_conformance import msl, needs_gpu  # noqa: F401  (msl: the GPU-backed loader)

pytestmark = needs_gpu
