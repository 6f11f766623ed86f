"""The translated kernels on an NVIDIA GPU (skipped without CuPy and CUDA; benches/nvidia_lane.py is the full run)."""

import pytest
import torch

from mpskernels.kernels import FAMILIES
from mpskernels.tolerances import compare

try:
    import cupy  # noqa: F401

    HAVE_GPU = torch.cuda.is_available()
except ImportError:
    HAVE_GPU = False

pytestmark = pytest.mark.skipif(not HAVE_GPU, reason="needs CuPy and a CUDA device")


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_examples_match_the_float64_reference_on_the_gpu(family):
    from mpskernels.cuda import runner

    for dtype in family.dtypes:
        for args in family.examples(dtype):
            args = tuple(a.cuda() if isinstance(a, torch.Tensor) else a for a in args)
            try:
                got = runner.run(family, args)
            except runner.Unsupported:
                continue
            ref_args = tuple((a.double() if a.is_floating_point() else a.clone()) if isinstance(a, torch.Tensor)
                             else a for a in args)
            out = family.reference(*ref_args)
            outs = () if out is None else out if isinstance(out, tuple) else (out,)
            names = [n for n in runner.registry.RUNNERS[family.name].names]
            want = outs + tuple(ref_args[names.index(m)] for m in family.mutates)
            for g, w in zip(got, want):
                assert compare(g, w, g.dtype if g.is_floating_point() else torch.float32).ok
