"""The compile backend reads and fills optimize()'s decision cache before it rewrites an aten call (fake GPU)."""

import json

import torch
from torch import fx, nn

from mpskernels import compile as backend
from mpskernels.optimize import cache
from mpskernels.optimize.gate import speed_gate

from .fakes import gpu  # noqa: F401  (fixture)


def aten_graph(x):
    return backend.to_aten(fx.symbolic_trace(nn.Sequential(nn.SiLU())), [x])


def silu_calls(gm):
    return [str(n.target) for n in gm.graph.nodes if n.op == "call_function" and "silu" in str(n.target)]


def test_a_slower_kernel_is_not_rewritten_and_the_cached_decision_is_read_back(gpu):
    x = torch.randn(4, 8)
    gpu.set_cost("silu", 50e-6)  # PyTorch's own silu costs nothing on the fake clock: the kernel is slower
    gm = aten_graph(x)
    assert backend.rewrite(gm, speed_gate([x]))["rewrite_direct"] == 0
    assert silu_calls(gm) == ["aten.silu.default"] and gpu.syncs > 0
    path = cache.default_path()
    data = json.loads(path.read_text())
    (key,) = data["decisions"]
    assert '"aten:aten.silu.default"' in key and data["decisions"][key]["keep"] is False

    data["decisions"][key]["keep"] = True  # as if a faster kernel had been measured here
    path.write_text(json.dumps(data))
    gpu.syncs = 0
    gm = aten_graph(x)
    assert backend.rewrite(gm, speed_gate([x]))["rewrite_direct"] == 1
    assert silu_calls(gm) == ["mpskernels.silu.default"] and gpu.syncs == 0  # read from the cache, not timed


def test_without_a_gpu_backend_there_is_no_gate():
    assert speed_gate([torch.randn(2)]) is None
