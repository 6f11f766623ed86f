"""Issue 15 item 1: gradients are never lost. Swapped modules run their own forward whenever autograd records; every
op returning new tensors has a backward derived from its PyTorch reference; the compile backend keeps gradients."""

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import mpskernels
import mpskernels.compile as backend_module
from mpskernels import launches
from mpskernels.kernels import FAMILIES
from mpskernels.optimize import optimize, swapped_modules
from mpskernels.registry import HAS_BACKWARD, op, reference_backward

NOT_REGISTERED = "autograd kernel was not registered"


@pytest.fixture
def emulator():
    with mpskernels.use_backend("emulator"):
        yield


def t(*shape):
    return torch.randn(*shape, dtype=torch.float64)


# Small arguments per op (float64): gradcheck perturbs every element.
GRAD_CASES = {
    "silu": lambda: (t(5),), "gelu": lambda: (t(5), "tanh"), "mish": lambda: (t(5),),
    "hardswish": lambda: (t(5),), "swiglu": lambda: (t(5), t(5)), "geglu": lambda: (t(5), t(5), "none"),
    "swiglu_split": lambda: (t(2, 6),), "geglu_split": lambda: (t(2, 6), "tanh"),
    "attention": lambda: (t(1, 2, 3, 4), t(1, 2, 5, 4), t(1, 2, 5, 4), t(1, 1, 3, 5), False, None, None),
    "bias_act": lambda: (t(2, 4), t(4), "gelu", -1),
    "group_norm": lambda: (t(2, 4, 3), 2, t(4), t(4), 1e-5),
    "layer_norm": lambda: (t(2, 6), t(6), t(6), 1e-5),
    "add_layer_norm": lambda: (t(2, 6), t(2, 6), t(6), t(6), 1e-5),
    "rms_norm": lambda: (t(2, 6), t(6), 1e-5), "add_rms_norm": lambda: (t(2, 6), t(2, 6), t(6), 1e-5),
    "rope": lambda: (t(1, 2, 3, 4), t(1, 1, 3, 4), t(1, 3, 4), t(1, 3, 4), None, 0, False),
    "softmax": lambda: (t(3, 5), None, 0.7), "log_softmax": lambda: (t(3, 5), t(3, 5), 1.0),
    # packed int32 weights: no gradient (only the floating inputs are checked)
    "quantized_linear": lambda: (t(2, 32), torch.randint(-2**31, 2**31, (3, 4), dtype=torch.int32), t(3, 1),
                                 t(3, 1), t(3), 4, 32),
}


def via_reference(family):
    """The op's forward as its reference, with the backward registry.py registers for it (the op itself takes no
    float64, so this is how its backward meets gradcheck in float64)."""
    setup, backward = reference_backward(family)

    class ReferenceOp(torch.autograd.Function):
        @staticmethod
        def forward(*args):
            return family.reference(*args)

        @staticmethod
        def setup_context(ctx, inputs, output):
            setup(ctx, inputs, output)

        @staticmethod
        def backward(ctx, *grads):
            return backward(ctx, *grads)

    return ReferenceOp.apply


def test_every_op_returning_tensors_has_a_backward_and_it_passes_gradcheck_in_float64():
    assert HAS_BACKWARD == {f.name for f in FAMILIES if not f.mutates}
    assert set(GRAD_CASES) == HAS_BACKWARD
    torch.manual_seed(0)
    for family in FAMILIES:
        if family.name not in HAS_BACKWARD:
            continue
        args = [a.requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
                for a in GRAD_CASES[family.name]()]
        assert torch.autograd.gradcheck(via_reference(family), tuple(args), fast_mode=True), family.name


def test_op_gradients_on_the_emulator_match_pytorchs_own_in_float32(emulator):
    torch.manual_seed(0)
    x, w, b = torch.randn(3, 33), torch.rand(33) + 0.5, torch.randn(3, 33)
    cases = [  # (mpskernels op call, PyTorch's own computation of the same function)
        (lambda x, w, b: op("rms_norm")(x, w, 1e-5), lambda x, w, b: F.rms_norm(x, (33,), w, 1e-5)),
        (lambda x, w, b: op("softmax")(x, None, 1.0) * b, lambda x, w, b: torch.softmax(x, -1) * b),
        (lambda x, w, b: op("swiglu")(x, b), lambda x, w, b: F.silu(x) * b),
    ]
    for kernel, own in cases:
        grads = []
        for f in (kernel, own):
            leaves = [v.clone().requires_grad_() for v in (x, w, b)]
            start = launches.count()
            (f(*leaves) * torch.linspace(-1, 1, 33)).sum().backward()
            grads.append(([l.grad for l in leaves], launches.count() - start))
        assert grads[0][1] > 0  # the forward ran the kernel
        for got, want in zip(grads[0][0], grads[1][0]):
            assert (got is None) == (want is None)
            if want is not None:
                torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def small_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.SiLU(), nn.RMSNorm(16, eps=1e-5), nn.Linear(16, 4))


def test_an_optimised_model_in_training_keeps_every_gradient(emulator):
    model = small_model()
    twin = copy.deepcopy(model)
    x = torch.randn(5, 8)
    optimize(model, example_inputs=(x,))
    assert set(swapped_modules(model)) == {"1", "2"}
    for m in (model, twin):
        m(x).pow(2).sum().backward()
    for (name, p), q in zip(model.named_parameters(), twin.parameters()):
        assert p.grad is not None, name  # before: grad None for every parameter before a swapped module
        torch.testing.assert_close(p.grad, q.grad)
    with torch.no_grad():  # inference still runs the kernels
        start = launches.count()
        model(x)
        assert launches.count() - start == 2
    leaf = x.clone().requires_grad_()  # an input requiring grad, parameters frozen
    for p in model.parameters():
        p.requires_grad_(False)
    model(leaf).sum().backward()
    assert leaf.grad is not None and leaf.grad.abs().sum() > 0


def test_compile_backend_keeps_gradients_and_never_warns(emulator, monkeypatch):
    monkeypatch.setattr(backend_module, "_compile_rest", lambda gm, inputs: gm)  # eager for the rest: fast
    torch._dynamo.reset()
    try:
        model, twin = small_model(), small_model()
        compiled = torch.compile(model, backend="mpskernels")
        x = torch.randn(5, 8)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            compiled(x).pow(2).sum().backward()
            with torch.no_grad():
                compiled(x)
        twin(x).pow(2).sum().backward()
        assert not [w for w in caught if NOT_REGISTERED in str(w.message)]
        for p, q in zip(model.parameters(), twin.parameters()):
            assert p.grad is not None
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5)
    finally:
        torch._dynamo.reset()


def test_compile_backend_leaves_a_graph_needing_gradients_when_an_op_has_no_backward(monkeypatch):
    monkeypatch.setattr(backend_module, "_compile_rest", lambda gm, inputs: gm)
    monkeypatch.setattr("mpskernels.registry.HAS_BACKWARD", HAS_BACKWARD - {"silu"})
    graphs = []
    real_to_aten = backend_module.to_aten
    monkeypatch.setattr(backend_module, "to_aten", lambda *a: graphs.append(real_to_aten(*a)) or graphs[-1])
    torch._dynamo.reset()
    try:
        model = nn.Sequential(nn.Linear(8, 8), nn.SiLU())
        torch.compile(model, backend="mpskernels")(torch.randn(2, 8)).sum().backward()
        targets = [str(n.target) for n in graphs[-1].graph.nodes]
        assert not any("mpskernels" in s for s in targets) and model[0].weight.grad is not None
        torch._dynamo.reset()
        with torch.no_grad():  # without gradients the same graph is rewritten
            torch.compile(model, backend="mpskernels")(torch.randn(2, 8))
        assert any("mpskernels.silu" in str(n.target) for n in graphs[-1].graph.nodes)
    finally:
        torch._dynamo.reset()


def test_mpskernels_ops_called_directly_keep_gradients_and_run_the_kernel(emulator):
    x, w = torch.randn(4, 33, requires_grad=True), (torch.rand(33) + 0.5).requires_grad_()
    start = launches.count()
    out = mpskernels.ops.rms_norm(x, w, 1e-5)
    assert launches.count() > start and out.grad_fn is not None  # before: the kernel ran, and no grad_fn
    out.pow(2).sum().backward()
    x2, w2 = x.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    F.rms_norm(x2, (33,), w2, 1e-5).pow(2).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(w.grad, w2.grad, rtol=1e-4, atol=1e-5)


def test_an_eval_model_called_without_no_grad_still_runs_its_kernels(emulator):
    model = small_model().eval()
    x = torch.randn(5, 8)
    optimize(model, example_inputs=(x,))
    start = launches.count()
    out = model(x)  # parameters require grad: autograd records, the kernels run through the registered ops
    assert launches.count() - start == 2
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
