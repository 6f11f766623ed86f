"""The emulator's conformance tests for integer.metal (clz, ctz, popcount, mulhi, rotate, extract/insert_bits,
reverse_bits, saturating and halving adds, as_type), on an NVIDIA GPU through the CUDA translation."""

from emulator.test_conformance_integer import *  # noqa: F401,F403  (the tests and their `lib` fixture)
from nvidia_lane.gpu_conformance import msl, needs_gpu  # noqa: F401  (msl: the GPU-backed loader)

pytestmark = needs_gpu
