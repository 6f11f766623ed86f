"""benches/dispatch.py's measurement as a function (decode_step.py reports it next to the op counts)."""

import sys
from pathlib import Path

import torch

from mpskernels import runtime

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benches"))
import dispatch  # noqa: E402


def test_added_host_us_measures_both_routes_and_restores_the_backends():
    before = dict(runtime.AUTOMATIC), set(runtime.BACKENDS)
    costs, _, what = dispatch.added_host_us(only=("silu", "rms_norm"), calls=20, repeats=2)
    assert [c.name for c in costs] == ["silu", "rms_norm"]
    for c in costs:
        assert c.dispatcher > 0 and c.direct > 0 and c.alloc > 0 and c.native is not None
        assert c.added_direct == c.direct - c.alloc
    assert "no-op" in what or "MPS" in what
    assert (dict(runtime.AUTOMATIC), set(runtime.BACKENDS)) == before  # the no-op launch was only for the measurement
    # and the automatic CPU choice is the reference again (a stale no-op choice made later calls return outputs no
    # kernel wrote: the CI failures of test_rope_and_append_compile_fullgraph and of gelu's opcheck)
    assert runtime.choose_backend(torch.device("cpu")) == (None, False)
    x = torch.randn(8)
    torch.testing.assert_close(torch.ops.mpskernels.silu(x), torch.nn.functional.silu(x), rtol=0, atol=0)
