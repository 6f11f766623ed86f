"""Issue 15, "recognise what models actually compute": hand-written forms recognised by their computation and
confirmed by probing (optimize/handwritten.py), and near misses that probing refuses. The oracle is each module's
own forward, on a copy that was never optimised, and a float64 computation of the kernel's definition."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import mpskernels
from mpskernels import launches
from mpskernels.optimize import optimize, swapped_modules


@pytest.fixture
def emulator():
    with mpskernels.use_backend("emulator"), torch.no_grad():
        yield


D = 32


class ScaleRMSNorm(nn.Module):  # the parameter is `scale`, the epsilon is written in the forward
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.rand(D) + 0.5)

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.scale


class GRMSNorm(nn.Module):  # `g`, with an epsilon attribute
    def __init__(self):
        super().__init__()
        self.g = nn.Parameter(torch.rand(D) + 0.5)
        self.epsilon = 1e-5

    def forward(self, x):
        return self.g * (x / torch.sqrt((x * x).mean(-1, keepdim=True) + self.epsilon))


class GemmaStyle(nn.Module):  # x_hat * (1 + scale): Gemma's RMSNorm, the op with the weight 1 + scale (issue 18)
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.rand(D))
        self.eps = 1e-6

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * (1 + self.scale)


class HandLayerNorm(nn.Module):  # the bias-like parameter registered first, odd names
    def __init__(self):
        super().__init__()
        self.beta = nn.Parameter(torch.randn(D))
        self.gamma = nn.Parameter(torch.rand(D) + 0.5)
        self.eps = 1e-5

    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        var = (x - mean).pow(2).mean(-1, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.gamma + self.beta


class PlainLayerNorm(nn.Module):  # no parameters, an epsilon attribute
    def __init__(self):
        super().__init__()
        self.eps = 1e-5

    def forward(self, x):
        return (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True, unbiased=False) + self.eps)


class ScaleShift(nn.Module):  # near miss: two 1-D parameters, no normalisation
    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.rand(D) + 0.5)
        self.b = nn.Parameter(torch.randn(D))
        self.eps = 1e-5

    def forward(self, x):
        return x * self.a + self.b


class FusedSwiGLU(nn.Module):
    def __init__(self, gate_first=True, act=F.silu):
        super().__init__()
        self.w12 = nn.Linear(D, 96)
        self.proj_out = nn.Linear(48, D)
        self.gate_first, self.act = gate_first, act

    def forward(self, x):
        a, b = self.w12(x).chunk(2, -1)
        return self.proj_out(self.act(a) * b if self.gate_first else self.act(b) * a)


class OddNamesGatedMLP(nn.Module):  # three Linears, the activation called as a function
    def __init__(self):
        super().__init__()
        self.wi_0 = nn.Linear(D, 40, bias=False)
        self.wi_1 = nn.Linear(D, 40, bias=False)
        self.wo = nn.Linear(40, D, bias=False)

    def forward(self, x):
        return self.wo(F.gelu(self.wi_0(x), approximate="tanh") * self.wi_1(x))


def _rms(x, w, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def _layer(x, w, b, eps):
    mean = x.mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(((x - mean) ** 2).mean(-1, keepdim=True) + eps) * w + b


CASES = [
    ("scale", ScaleRMSNorm, "rms_norm", lambda m, x: _rms(x, m.scale.double(), 1e-6)),
    ("g", GRMSNorm, "rms_norm", lambda m, x: _rms(x, m.g.double(), 1e-5)),
    ("layer norm", HandLayerNorm, "layer_norm", lambda m, x: _layer(x, m.gamma.double(), m.beta.double(), 1e-5)),
    ("plain layer norm", PlainLayerNorm, "layer_norm", lambda m, x: _layer(x, 1.0, 0.0, 1e-5)),
    ("split swiglu", FusedSwiGLU, "swiglu_split", None),
    ("split, gate second", lambda: FusedSwiGLU(gate_first=False), "swiglu", None),
    ("split geglu tanh", lambda: FusedSwiGLU(act=lambda t: F.gelu(t, approximate="tanh")), "geglu_split", None),
    ("gated, odd names", OddNamesGatedMLP, "geglu_split", None),  # its projections as one matmul
    ("1 + scale", GemmaStyle, "rms_norm", lambda m, x: _rms(x, 1 + m.scale.double(), 1e-6)),
]


@pytest.mark.parametrize("name, make, kernel, definition", CASES, ids=[c[0] for c in CASES])
def test_hand_written_forms_are_recognised_and_swapped(emulator, name, make, kernel, definition):
    torch.manual_seed(0)
    model = nn.Sequential(make()).eval()
    pristine = copy.deepcopy(model)
    x = torch.randn(4, 5, D)
    optimize(model, example_inputs=(x,))
    assert swapped_modules(model) == {"0": kernel}, str(model.mpskernels_report)
    assert model.mpskernels_report.swapped[0].matched_by == "computation"
    y = torch.randn(3, 7, D)
    start = launches.count()
    got = model(y)
    assert launches.count() - start >= 1
    torch.testing.assert_close(got, pristine(y), rtol=1e-5, atol=1e-5)
    if definition is not None:
        torch.testing.assert_close(got.double(), definition(pristine[0], y.double()), rtol=1e-5, atol=1e-5)


NEAR_MISSES = [
    ("scale and shift", ScaleShift, "computes none of layer_norm"),
    ("relu gate", lambda: FusedSwiGLU(act=F.relu), "computes none of"),
]


@pytest.mark.parametrize("name, make, said", NEAR_MISSES, ids=[c[0] for c in NEAR_MISSES])
def test_near_misses_are_refused_by_probing(emulator, name, make, said):
    torch.manual_seed(0)
    model = nn.Sequential(make()).eval()
    pristine = copy.deepcopy(model)
    x = torch.randn(4, D)
    optimize(model, example_inputs=(x,))
    assert swapped_modules(model) == {}
    entry = next(e for e in model.mpskernels_report.entries if e.module == "0")
    assert entry.status == "skipped" and said in entry.detail, entry.detail
    torch.testing.assert_close(model(x), pristine(x))


def test_an_epsilon_changed_after_optimize_is_read_at_call_time(emulator):
    torch.manual_seed(0)
    model = optimize(nn.Sequential(GRMSNorm()).eval(), example_inputs=(torch.randn(2, D),))
    assert swapped_modules(model) == {"0": "rms_norm"}
    model[0].epsilon = 1e-2
    x = torch.randn(2, D) * 0.05
    torch.testing.assert_close(model(x), _rms(x, model[0].g, 1e-2), rtol=1e-5, atol=1e-6)


def test_user_modules_with_nothing_recognised_are_listed_and_torch_modules_counted(emulator):
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(D, D)
            self.norm = ScaleRMSNorm()

        def forward(self, x):
            return self.norm(self.lin(x)).relu()

    model = optimize(nn.Sequential(Block(), nn.Dropout(0.0)).eval(), example_inputs=(torch.randn(2, D),))
    report = model.mpskernels_report
    assert swapped_modules(model) == {"0.norm": "rms_norm"}
    (entry,) = report.not_recognised
    assert entry.module == "0" and "its submodules are looked at on their own" in entry.detail
    assert report.no_kernel == {"Sequential": 1, "Linear": 1, "Dropout": 1}
    assert "1 not recognised" in str(report) and "Dropout x1" in str(report)
