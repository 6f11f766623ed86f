"""Issue 15, "recognise what models actually compute": functional calls inside a module's own forward (F.gelu,
F.silu, F.mish, F.hardswish, the softmax and log_softmax forms, F.layer_norm, F.rms_norm, F.group_norm) run the
mpskernels op, the model's root module included; calls made by a child's forward are not the parent's to route.
Every routed form is checked against PyTorch's own function and against a float64 computation written from the
function's documented definition."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import mpskernels
from mpskernels import launches
from mpskernels.optimize import OptimizeConfig, optimize, swapped_modules


@pytest.fixture
def emulator():
    with mpskernels.use_backend("emulator"), torch.no_grad():
        yield


# ---- float64 definitions ----


def _gelu(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def _gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def _softmax(x):
    e = torch.exp(x - x.amax(-1, keepdim=True))
    return e / e.sum(-1, keepdim=True)


def _log_softmax(x):
    shifted = x - x.amax(-1, keepdim=True)
    return shifted - torch.log(torch.exp(shifted).sum(-1, keepdim=True))


def _layer_norm(x, w, b, eps):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * w + b


def _rms_norm(x, w, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def _group_norm(x, groups, w, b, eps):
    n, c = x.shape[:2]
    g = x.reshape(n, groups, -1)
    mean = g.mean(-1, keepdim=True)
    var = ((g - mean) ** 2).mean(-1, keepdim=True)
    y = ((g - mean) / torch.sqrt(var + eps)).reshape(x.shape)
    shape = (1, c) + (1,) * (x.dim() - 2)
    return y * w.reshape(shape) + b.reshape(shape)


class Calls(nn.Module):
    """A user module whose forward makes one call after a Linear (so it is no parameter-free activation the
    computation recognisers would take as a whole); `calls(expression)` writes that forward."""

    def __init__(self, width=32):
        super().__init__()
        self.proj = nn.Linear(width, width)
        torch.manual_seed(1)
        self.w = nn.Parameter(torch.rand(width) + 0.5)
        self.b = nn.Parameter(torch.randn(width))


def calls(expression: str) -> type:
    """A Calls class whose own forward computes `expression` of y = proj(x) (the call must be in the forward's own
    code: a function the forward calls is not the module's code)."""
    namespace = {"F": F, "torch": torch}
    exec(f"def forward(self, x):\n    y = self.proj(x)\n    return {expression}\n", namespace)
    return type("Calls", (Calls,), {"forward": namespace["forward"]})


# name, expression in the forward, float64 definition (of y and the module), kernel, input shape
FORMS = [
    ("F.gelu", "F.gelu(y)", lambda y, m: _gelu(y), "gelu", (4, 32)),
    ("F.gelu tanh", "F.gelu(y, approximate='tanh')", lambda y, m: _gelu_tanh(y), "gelu", (4, 32)),
    ("F.silu", "F.silu(y)", lambda y, m: y / (1 + torch.exp(-y)), "silu", (4, 32)),
    ("F.mish", "F.mish(y)", lambda y, m: y * torch.tanh(torch.log1p(torch.exp(y))), "mish", (4, 32)),
    ("F.hardswish", "F.hardswish(y)", lambda y, m: y * (y + 3).clamp(0, 6) / 6, "hardswish", (4, 32)),
    ("torch.softmax", "torch.softmax(y, dim=-1)", lambda y, m: _softmax(y), "softmax", (4, 32)),
    ("F.softmax", "F.softmax(y, dim=2)", lambda y, m: _softmax(y), "softmax", (2, 3, 32)),
    ("F.softmax dim=None 2-D", "F.softmax(y)", lambda y, m: _softmax(y), "softmax", (4, 32)),
    ("Tensor.softmax", "y.softmax(-1)", lambda y, m: _softmax(y), "softmax", (4, 32)),
    ("torch.log_softmax", "torch.log_softmax(y, -1)", lambda y, m: _log_softmax(y), "log_softmax", (4, 32)),
    ("F.log_softmax", "F.log_softmax(y, dim=-1, dtype=torch.float32)", lambda y, m: _log_softmax(y),
     "log_softmax", (4, 32)),
    ("Tensor.log_softmax", "y.log_softmax(dim=1)", lambda y, m: _log_softmax(y), "log_softmax", (4, 32)),
    ("F.layer_norm", "F.layer_norm(y, (32,), self.w, self.b, 1e-5)",
     lambda y, m: _layer_norm(y, m.w.double(), m.b.double(), 1e-5), "layer_norm", (4, 32)),
    ("F.rms_norm", "F.rms_norm(y, [32], self.w, 1e-6)", lambda y, m: _rms_norm(y, m.w.double(), 1e-6),
     "rms_norm", (4, 32)),
    ("F.rms_norm eps=None", "F.rms_norm(y, [32], self.w)",
     lambda y, m: _rms_norm(y, m.w.double(), torch.finfo(torch.float32).eps), "rms_norm", (4, 32)),
    ("F.group_norm", "F.group_norm(y.reshape(4, 8, 4), 4, self.w[:8], self.b[:8], 1e-5).reshape(4, 32)",
     lambda y, m: _group_norm(y.reshape(4, 8, 4), 4, m.w[:8].double(), m.b[:8].double(), 1e-5).reshape(4, 32),
     "group_norm", (4, 32)),
]


@pytest.mark.parametrize("name, expression, definition, kernel, shape", FORMS, ids=[f[0] for f in FORMS])
def test_each_functional_form_runs_the_kernel(emulator, name, expression, definition, kernel, shape):
    torch.manual_seed(0)
    model = calls(expression)().eval()
    pristine = copy.deepcopy(model)
    x = torch.randn(shape) * 2
    optimize(model, example_inputs=(x,))
    assert swapped_modules(model) == {"": kernel}, str(model.mpskernels_report)
    (entry,) = model.mpskernels_report.swapped
    assert f"routed {kernel} x1" in entry.detail
    start = launches.count()
    got = model(x)
    assert launches.count() - start == 1  # the op's kernel, once
    torch.testing.assert_close(got, pristine(x), rtol=1e-5, atol=1e-5)  # PyTorch's own function
    y = pristine.proj(x).double()
    want = definition(y, pristine)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)  # the documented definition


def test_a_call_made_by_a_helper_function_is_not_the_modules_own(emulator):
    def helper(y):
        return F.gelu(y)

    class Helped(Calls):
        def forward(self, x):
            return helper(self.proj(x))

    model = optimize(Helped().eval(), example_inputs=(torch.randn(4, 32),))
    assert swapped_modules(model) == {}
    (entry,) = model.mpskernels_report.entries
    assert entry.status == "not recognised"


class Kid(nn.Module):
    def forward(self, x):
        return F.silu(x) + 1


class Parent(nn.Module):
    def __init__(self):
        super().__init__()
        self.kid = Kid()

    def forward(self, x):
        return self.kid(F.silu(x))


def test_a_childs_functional_call_is_not_routed_by_the_parent(emulator):
    # the child is left alone (skip), so its F.silu must run PyTorch's even while the parent's route is active
    model = optimize(Parent().eval(), OptimizeConfig(skip={"kid"}), example_inputs=(torch.randn(3, 8),))
    assert swapped_modules(model) == {"": "silu"}
    (entry,) = model.mpskernels_report.swapped
    assert "routed silu x1" in entry.detail and "not routed" not in entry.detail
    x = torch.randn(3, 8)
    start = launches.count()
    got = model(x)
    assert launches.count() - start == 1  # the parent's call only
    torch.testing.assert_close(got, F.silu(F.silu(x)) + 1)


def test_another_instance_of_the_same_class_is_not_routed_by_this_ones_route(emulator):
    class Node(nn.Module):
        def __init__(self, inner=None):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            x = F.gelu(x)
            return self.inner(x) if self.inner is not None else x

    model = optimize(Node(Node()).eval(), OptimizeConfig(skip={"inner"}), example_inputs=(torch.randn(3, 8),))
    assert swapped_modules(model) == {"": "gelu"}
    start = launches.count()
    model(torch.randn(3, 8))
    assert launches.count() - start == 1  # the same code, but the inner module's call is not the root's


REFUSED = [
    ("torch.softmax(y, dim=0)", "softmax: dim=0 is not the last dimension"),
    ("F.softmax(y.reshape(2, 2, 32)).reshape(4, 32)", "softmax: dim=None is not the last dimension"),
    ("F.softmax(y, dim=-1, dtype=torch.float64).float()", "dtype=torch.float64 differs"),
    ("F.silu(y, inplace=True)", "silu: in place"),
    ("F.layer_norm(y.reshape(4, 4, 8), (4, 8)).reshape(4, 32)", "is not the last dimension alone"),
    ("F.gelu(y.double()).float()", "float64"),
]


@pytest.mark.parametrize("expression, reason", REFUSED,
                         ids=["dim", "legacy dim", "dtype", "inplace", "shape", "float64"])
def test_calls_the_kernel_does_not_take_run_pytorch_and_say_why(emulator, expression, reason):
    torch.manual_seed(0)
    model = calls(expression)().eval()
    pristine = copy.deepcopy(model)
    x = torch.randn(4, 32)
    optimize(model, example_inputs=(x,))
    assert swapped_modules(model) == {}
    (entry,) = [e for e in model.mpskernels_report.entries if e.module == ""]
    assert entry.status == "skipped" and reason in entry.detail, entry.detail
    torch.testing.assert_close(model(x), pristine(x))


class Model(nn.Module):
    """A KernelBench level 1 problem: the model is the root module and its forward calls the functions."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(torch.nn.functional.gelu(x), dim=self.dim)


def test_the_root_module_of_a_kernelbench_style_model_is_routed(emulator):
    x = torch.randn(16, 128)
    model = optimize(Model(1).eval(), example_inputs=(x,))
    assert swapped_modules(model) == {"": "gelu+softmax"}
    start = launches.count()
    got = model(x)
    assert launches.count() - start == 2
    torch.testing.assert_close(got, torch.softmax(F.gelu(x), dim=1))
    torch.testing.assert_close(got.double(), _softmax(_gelu(x.double())), rtol=1e-5, atol=1e-6)
    # softmax over dim 0 is refused per call; the gelu is still routed
    other = optimize(Model(0).eval(), example_inputs=(x,))
    assert swapped_modules(other) == {"": "gelu"}
    assert "softmax: dim=0 is not the last dimension" in other.mpskernels_report.swapped[0].detail


def test_without_example_inputs_the_forwards_code_names_the_functions(emulator):
    model = optimize(Model(1).eval())
    assert swapped_modules(model) == {"": "gelu+softmax"}
    x = torch.randn(4, 64)
    start = launches.count()
    torch.testing.assert_close(model(x), torch.softmax(F.gelu(x), dim=1))
    assert launches.count() - start == 2


def test_silu_times_b_is_left_to_the_compile_backend_with_a_note(emulator):
    class Gate(nn.Module):
        def __init__(self):
            super().__init__()
            self.up = nn.Linear(8, 16)

        def forward(self, x):
            a, b = self.up(x).chunk(2, -1)
            return F.silu(a) * b

    model = optimize(Gate().eval(), example_inputs=(torch.randn(3, 8),))
    assert swapped_modules(model) == {"": "silu"}
    assert 'torch.compile(backend="mpskernels") fuses it' in model.mpskernels_report.swapped[0].detail


def test_gradients_keep_pytorchs_function(emulator):
    model = optimize(calls("F.gelu(y)")().eval(), example_inputs=(torch.randn(4, 32),))
    assert swapped_modules(model) == {"": "gelu"}
    x = torch.randn(4, 32, requires_grad=True)
    with torch.enable_grad():
        start = launches.count()
        model(x).sum().backward()
    assert launches.count() == start and x.grad is not None and model.proj.weight.grad is not None


def test_a_copy_and_a_saved_model_keep_their_routes(emulator, tmp_path):
    x = torch.randn(4, 64)
    model = optimize(Model(1).eval(), example_inputs=(x,))
    twin = copy.deepcopy(model)
    torch.save(model, tmp_path / "model.pt")
    loaded = torch.load(tmp_path / "model.pt", weights_only=False)
    for m in (twin, loaded):
        assert swapped_modules(m) == {"": "gelu+softmax"}
        start = launches.count()
        torch.testing.assert_close(m(x), torch.softmax(F.gelu(x), dim=1))
        assert launches.count() - start == 2
