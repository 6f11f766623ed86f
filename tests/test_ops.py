"""Every declared kernel family as a torch.library op: correctness on the emulator, opcheck, torch.compile,
backend choice and fallbacks, input handling. Test cases come from the declarations themselves."""

import logging

import pytest
import torch

import mpskernels
from mpskernels import registry, runtime
from mpskernels.kernels import FAMILIES
from mpskernels.runtime import BackendError, use_backend
from mpskernels.tolerances import compare
from op_cases import clone_args, run_op, run_reference, strided_copy  # noqa: F401

CASES = [
    pytest.param(family, dtype, i, id=f"{family.name}-{str(dtype)[6:]}-{i}")
    for family in FAMILIES
    for dtype in family.dtypes
    for i in range(len(family.examples(dtype)))
]


@pytest.fixture
def poisoned_outputs(monkeypatch):
    monkeypatch.setattr(registry, "poison_outputs", True)


@pytest.mark.parametrize("family, dtype, i", CASES)
def test_kernel_matches_float64_reference_on_the_emulator(family, dtype, i, poisoned_outputs):
    args = family.examples(dtype)[i]
    got = run_op(family, args, "emulator")
    for out, want64, want in zip(got, run_reference(family, args, torch.float64), run_reference(family, args)):
        assert out.dtype == want.dtype
        result = compare(out, want64, out.dtype if out.is_floating_point() else torch.float32)
        assert result.ok, str(result)
        if out.is_floating_point():  # ... and with the reference in the op's own dtype
            assert compare(out, want, out.dtype).ok


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_non_contiguous_and_offset_inputs_give_the_same_results(family, poisoned_outputs):
    for args in family.examples(torch.float32):
        expected = run_op(family, args, "emulator")
        strided = tuple(strided_copy(a) if isinstance(a, torch.Tensor) else a for a in args)
        assert all(not a.is_contiguous() for a in strided if isinstance(a, torch.Tensor) and a.numel() > 1)
        got = run_op(family, strided, "emulator")
        for g, e in zip(got, expected):
            torch.testing.assert_close(g, e, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("family", [f for f in FAMILIES if f.fallback_examples(torch.float32)],
                         ids=lambda f: f.name)
def test_unsupported_cases_fall_back_to_the_reference(family, monkeypatch):
    launched = []
    monkeypatch.setattr(runtime.BACKENDS["emulator"], "launch", lambda *a: launched.append(a))
    for dtype in family.dtypes:
        for args in family.fallback_examples(dtype):
            got = run_op(family, args, "emulator")
            for g, want in zip(got, run_reference(family, args)):
                torch.testing.assert_close(g, want, equal_nan=True)
    assert launched == []


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_opcheck(family):
    for args in family.examples(torch.float32):
        torch.library.opcheck(registry.op(family.name).default, args)
        # Strided inputs too: the fake implementation must allocate what the real call does (contiguous).
        strided = tuple(strided_copy(a) if isinstance(a, torch.Tensor) else a for a in args)
        torch.library.opcheck(registry.op(family.name).default, strided)
    with use_backend("emulator"):
        torch.library.opcheck(registry.op(family.name).default, family.examples(torch.float16)[0])


def test_compiles_fullgraph_without_recompiles():
    from torch._dynamo.testing import CompileCounter

    counter = CompileCounter()

    @torch.compile(backend=counter, fullgraph=True)
    def block(x, w):
        return torch.ops.mpskernels.silu(torch.ops.mpskernels.rms_norm(x, w, 1e-6)) * 2

    torch._dynamo.reset()
    x, w = torch.randn(4, 64), torch.rand(64)
    for _ in range(3):
        out = block(x, w)
    assert counter.frame_count == 1
    ref = torch.nn.functional.silu(registry.op("rms_norm")(x, w, 1e-6)) * 2
    torch.testing.assert_close(out, ref)


def registry_family(name):
    return next(f for f in FAMILIES if f.name == name)


def test_empty_and_zero_dim_tensors():
    with use_backend("emulator"):
        assert torch.ops.mpskernels.silu(torch.empty(0, 3)).shape == (0, 3)
        assert torch.ops.mpskernels.rms_norm(torch.empty(0, 8), None, 1e-5).shape == (0, 8)
        scalar = torch.tensor(0.5)
        torch.testing.assert_close(torch.ops.mpskernels.silu(scalar), torch.nn.functional.silu(scalar))
        # rms_norm has nothing to normalise over: the declared constraint sends it to the reference.
        torch.testing.assert_close(torch.ops.mpskernels.rms_norm(scalar, None, 0.0), torch.tensor(1.0))


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: torch.ops.mpskernels.silu(torch.randn(3, dtype=torch.float64)), TypeError,
         r"mpskernels\.silu: x has dtype torch\.float64; supported dtypes: float32, float16, bfloat16"),
        (lambda: torch.ops.mpskernels.rms_norm(torch.randn(2, 4), torch.rand(4, dtype=torch.float16), 1e-5),
         TypeError, r"mpskernels\.rms_norm: all tensors must have one dtype"),
        (lambda: torch.ops.mpskernels.rms_norm(torch.randn(2, 4), torch.rand(5), 1e-5), ValueError,
         r"mpskernels\.rms_norm: weight must have shape \(4,\)"),
        (lambda: registry.run(registry_family("rms_norm"), torch.randn(2, 4), torch.rand(4, device="meta"), 1e-5),
         ValueError, r"mpskernels\.rms_norm: all tensors must be on one device, got x on cpu, weight on meta"),
    ],
    ids=["dtype", "mixed-dtypes", "shape", "mixed-devices"],
)
def test_bad_inputs_raise_errors_naming_the_op(call, error, message):
    with pytest.raises(error, match=message):
        call()


# ---- backend selection ----


class Spy:
    def __init__(self, backend, fail=False):
        self.backend, self.fail, self.calls = backend, fail, 0
        self.name, self.device_types = backend.name, ("cpu",)

    def unavailable(self):
        return None

    def launch(self, family, plan, tensors):
        self.calls += 1
        if self.fail:
            raise RuntimeError("simulated launch failure")
        self.backend.launch(family, plan, tensors)


@pytest.fixture
def spy(monkeypatch):
    def install(fail=False, automatic=False):
        s = Spy(runtime.BACKENDS["emulator"], fail)
        monkeypatch.setitem(runtime.BACKENDS, "emulator", s)
        if automatic:
            monkeypatch.setitem(runtime.AUTOMATIC, "cpu", ("emulator",))
        return s

    return install


def test_cpu_runs_the_reference_unless_the_emulator_is_asked_for(spy, monkeypatch):
    s = spy()
    x = torch.randn(8)
    torch.ops.mpskernels.silu(x)
    assert s.calls == 0
    with use_backend("emulator"):
        torch.ops.mpskernels.silu(x)
    assert s.calls == 1
    monkeypatch.setenv("MPSKERNELS_BACKEND", "emulator")
    torch.ops.mpskernels.silu(x)
    assert s.calls == 2
    monkeypatch.setenv("MPSKERNELS_BACKEND", "reference")
    torch.ops.mpskernels.silu(x)
    assert s.calls == 2


def test_an_explicit_backend_that_fails_raises(spy):
    spy(fail=True)
    with use_backend("emulator"), pytest.raises(BackendError, match=r"mpskernels\.silu: the emulator backend failed"):
        torch.ops.mpskernels.silu(torch.randn(4))
    with use_backend("metal-jit"), pytest.raises(BackendError, match="runs on mps tensors, got cpu"):
        torch.ops.mpskernels.silu(torch.randn(4))


def test_an_automatic_backend_that_fails_falls_back_with_one_log_message(spy, caplog):
    s = spy(fail=True, automatic=True)
    registry._logged_fallbacks.clear()
    x = torch.randn(16)
    with caplog.at_level(logging.INFO, logger="mpskernels"):
        for _ in range(3):
            torch.testing.assert_close(torch.ops.mpskernels.silu(x), torch.nn.functional.silu(x))
    assert s.calls == 3
    messages = [r.getMessage() for r in caplog.records if "simulated launch failure" in r.getMessage()]
    assert len(messages) == 1 and "mpskernels.silu" in messages[0]


def test_unknown_backend_names_are_rejected(monkeypatch):
    with pytest.raises(ValueError, match="unknown mpskernels backend 'cuda'"):
        with use_backend("cuda"):
            pass
    monkeypatch.setenv("MPSKERNELS_BACKEND", "gpu")
    with pytest.raises(BackendError, match="MPSKERNELS_BACKEND='gpu'"):
        torch.ops.mpskernels.silu(torch.randn(2))


def test_docs_kernel_table_is_generated_from_the_declarations():
    from pathlib import Path

    from mpskernels.docs import kernel_table

    path = Path(__file__).resolve().parent.parent / "docs" / "kernels.md"
    assert path.read_text() == kernel_table(), "docs/kernels.md is stale: run python -m mpskernels.docs"
    for family in FAMILIES:
        assert f"`{family.name}`" in kernel_table()


def test_package_import_registers_every_family():
    assert mpskernels.registry is registry
    for family in FAMILIES:
        assert hasattr(torch.ops.mpskernels, family.name)


def test_python_entry_points_call_directly_in_eager_and_the_op_under_compile(spy):
    from mpskernels import ops

    s = spy()
    x = torch.randn(5, 7)
    with use_backend("emulator"):
        torch.testing.assert_close(ops.silu(x), torch.nn.functional.silu(x))
    assert s.calls == 1
    assert ops.rms_norm.__doc__.startswith("mpskernels.rms_norm(Tensor x")

    from torch._dynamo.testing import CompileCounterWithBackend

    counter = CompileCounterWithBackend("aot_eager")
    torch._dynamo.reset()
    compiled = torch.compile(lambda t: ops.silu(t) + 1, backend=counter, fullgraph=True)
    torch.testing.assert_close(compiled(x), torch.nn.functional.silu(x) + 1)
    graph_ops = {str(n.target) for n in counter.graphs[0].graph.nodes if n.op == "call_function"}
    assert "mpskernels.silu.default" in graph_ops or "mpskernels.silu" in graph_ops


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_kernels_are_race_free_under_shuffled_lane_order(family, poisoned_outputs, monkeypatch):
    """Lanes run in a seeded random order at every step: a missing barrier around threadgroup memory shows up as
    poison (NaN) or a wrong value. Every family's float32 examples must still match the reference."""
    monkeypatch.setenv("MPSKERNELS_EMULATOR_ORDER", "shuffled")
    for args in family.examples(torch.float32):
        got = run_op(family, args, "emulator")
        for out, want in zip(got, run_reference(family, args, torch.float64)):
            result = compare(out, want, out.dtype if out.is_floating_point() else torch.float32)
            assert result.ok, str(result)


# ---- issue 16: scalars, argument types, memory, every error named ----

BACKENDS_TO_CHECK = ["reference", "emulator", None]  # None: the automatic choice (the reference on CPU)


def raises_named(call, backend, exc, pattern):
    ctx = use_backend(backend) if backend else __import__("contextlib").nullcontext()
    with ctx, pytest.raises(exc, match=pattern):
        call()


@pytest.mark.parametrize("backend", BACKENDS_TO_CHECK)
@pytest.mark.parametrize("name, make", [
    ("softmax", lambda s: (torch.randn(2, 5), None, s)),
    ("log_softmax", lambda s: (torch.randn(2, 5), None, s)),
    ("attention", lambda s: (torch.randn(1, 1, 3, 64), torch.randn(1, 1, 3, 64), torch.randn(1, 1, 3, 64), None,
                             False, s)),
])
@pytest.mark.parametrize("scale", [3.5e38, float("inf"), -float("inf"), float("nan")])
def test_scalars_out_of_range_are_refused_by_every_backend(name, make, scale, backend):
    """Item 3: scale >= FLT_MAX made the default backend return NaN while the emulator raised; now every backend
    refuses it before anything runs, naming the op and the argument."""
    raises_named(lambda: getattr(mpskernels.ops, name)(*make(scale)), backend, ValueError,
                 rf"mpskernels\.{name}: scale must be a finite float32 value")


@pytest.mark.parametrize("backend", BACKENDS_TO_CHECK)
def test_eps_is_checked_up_front(backend):
    for name, args in [("layer_norm", (torch.randn(2, 4), None, None)), ("rms_norm", (torch.randn(2, 4), None)),
                       ("group_norm", (torch.randn(2, 4), 2, None, None))]:
        for eps, pattern in [(-1e-5, "eps must be >= 0"), (1e39, "eps must be a finite float32"),
                             (float("nan"), "eps must be a finite float32")]:
            raises_named(lambda: getattr(mpskernels.ops, name)(*args, eps), backend, ValueError,
                         rf"mpskernels\.{name}: {pattern}")


@pytest.mark.parametrize("backend", BACKENDS_TO_CHECK)
@pytest.mark.parametrize("call, exc, pattern", [
    (lambda: mpskernels.ops.softmax([1.0, 2.0]), TypeError, r"mpskernels\.softmax: x must be a tensor, got list"),
    (lambda: mpskernels.ops.layer_norm(torch.randn(2, 3), [1.0, 1.0, 1.0], None, 1e-5), TypeError,
     r"mpskernels\.layer_norm: weight must be a tensor or None, got list"),
    (lambda: mpskernels.ops.rms_norm(torch.randn(2, 3), None, "1e-5"), TypeError,
     r"mpskernels\.rms_norm: eps must be a float, got str"),
    (lambda: mpskernels.ops.group_norm(torch.randn(2, 4), 2.0, None, None, 1e-5), TypeError,
     r"mpskernels\.group_norm: groups must be an int, got float"),
    (lambda: mpskernels.ops.attention(torch.randn(1, 1, 2, 0), torch.randn(1, 1, 2, 0), torch.randn(1, 1, 2, 0),
                                      None, False), ValueError, r"mpskernels\.attention: .*head_dim 0"),
    (lambda: mpskernels.ops.attention(torch.randn(1, 1, 2, 64), torch.randn(1, 1, 2, 64),
                                      torch.randn(1, 1, 2, 64), None, 1), TypeError,
     r"mpskernels\.attention: causal must be a bool, got int"),
])
def test_usage_errors_name_the_op_and_the_argument(call, exc, pattern, backend):
    """Item 5: a list where a tensor belongs raised `unhashable type: 'list'`, head dim 0 a ZeroDivisionError."""
    raises_named(call, backend, exc, pattern)


def test_meta_tensors_under_a_forced_emulator_name_the_op():
    with use_backend("emulator"), pytest.raises(BackendError, match=r"mpskernels\.layer_norm: the emulator backend "
                                                                    r"runs on cpu tensors, got meta"):
        mpskernels.ops.layer_norm(torch.randn(2, 3, device="meta"), None, None, 1e-5)


def kv_args():
    return torch.zeros(1, 2, 8, 4), torch.zeros(1, 2, 8, 4), torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4)


@pytest.mark.parametrize("backend", BACKENDS_TO_CHECK)
def test_kv_cache_append_refuses_shared_memory_and_grad_leaves(backend):
    """Item 4: new rows overlapping the rows they are written to were silently wrong on the default backend;
    k_cache is v_cache was accepted (a race on a GPU); a leaf cache requiring grad was written."""
    append = mpskernels.ops.kv_cache_append
    kc, vc, k, v = kv_args()
    raises_named(lambda: append(kc, kc, k, v, 0), backend, ValueError,
                 r"mpskernels\.kv_cache_append: k_cache and v_cache share memory")
    raises_named(lambda: append(kc, vc, kc[:, :, 1:4], v, 2), backend, ValueError,
                 r"mpskernels\.kv_cache_append: k shares memory with k_cache")
    raises_named(lambda: append(kc, vc, k, kc[:, :, :3], 0), backend, ValueError,
                 r"mpskernels\.kv_cache_append: v shares memory with k_cache")
    both = torch.zeros(2, 1, 2, 8, 4)
    raises_named(lambda: append(both[0], both[0].view(1, 2, 8, 4), k, v, 0), backend, ValueError,
                 r"k_cache and v_cache share memory")
    raises_named(lambda: append(torch.zeros(1, 1, 8, 4).expand(1, 2, 8, 4), vc, k, v, 0), backend, ValueError,
                 r"mpskernels\.kv_cache_append: k_cache has internal overlap")
    leaf = torch.zeros(1, 2, 8, 4, requires_grad=True)
    raises_named(lambda: append(leaf, vc, k, v, 0), backend, ValueError,
                 r"mpskernels\.kv_cache_append: k_cache requires grad")
    assert not leaf.detach().any() and not kc.any() and not vc.any()  # nothing was written by a refused call
    with torch.no_grad():  # allowed, as PyTorch allows in-place writes to leaves under no_grad
        ctx = use_backend(backend) if backend else __import__("contextlib").nullcontext()
        with ctx:
            append(leaf, vc, k, v, 0)
    assert torch.equal(leaf.detach()[:, :, :3], k)
    # Two halves of one buffer that do not overlap are fine.
    halves = torch.zeros(2, 1, 2, 8, 4)
    ctx = use_backend(backend) if backend else __import__("contextlib").nullcontext()
    with ctx:
        append(halves[0], halves[1], k, v, 5)
    assert torch.equal(halves[0][:, :, 5:], k) and torch.equal(halves[1][:, :, 5:], v)
