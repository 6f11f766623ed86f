"""The emulator's conformance tests for positions.metal, run on an NVIDIA GPU through the CUDA translation: the
kernel's threads never meet, so its ragged grids run as one launch with padding threads (test_launch.py checks
that they do)."""

from emulator.test_conformance_positions import *  # noqa: F401,F403  (the tests and their `lib` fixture)
from nvidia_lane.gpu_conformance import msl, needs_gpu  # noqa: F401  (msl: the GPU-backed loader)

pytestmark = needs_gpu
