"""Activations, gated units and the bias + activation epilogue beyond the generated tests: the fp32 erf/erfc in
metal/activations.metal swept densely against float64, accuracy of the negative tails, non-finite values, default
arguments, launch geometry (long rows, many rows), usage errors, and the 2^32-element fallback. Every kernel run is
on the emulator."""

import logging
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mpskernels import launches, registry, runtime
from mpskernels._paths import metal_dir
from mpskernels.emulator import compile_source
from mpskernels.kernels import activations as act
from mpskernels.kernels import epilogue
from mpskernels.kernels.spec import TensorMeta
from mpskernels.runtime import use_backend
from mpskernels.tolerances import compare

UNARY = ("silu", "gelu", "mish", "hardswish")
DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@pytest.fixture(autouse=True)
def poisoned_outputs(monkeypatch):
    monkeypatch.setattr(registry, "poison_outputs", True)


def family(name):
    return registry.RUNNERS[name].family


def emulated(name, *args):
    with use_backend("emulator"):
        return getattr(torch.ops.mpskernels, name)(*args)


def check(name, *args):
    """The op on the emulator against the float64 reference, with the output dtype's tolerance."""
    got = emulated(name, *args)
    up = [a.double() if isinstance(a, torch.Tensor) else a for a in args]
    want = family(name).reference(*up)
    assert got.dtype == args[0].dtype and got.shape == want.shape
    result = compare(got, want, got.dtype)
    assert result.ok, f"{name} {[tuple(a.shape) if isinstance(a, torch.Tensor) else a for a in args]}: {result}"
    return got


def randn(*shape, seed=0, scale=1.0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).mul(scale).to(dtype)


# ---- erf / erfc: the functions Metal lacks ----

PROBE = """
#define MPSK_ACTIVATION_FUNCTIONS_ONLY
#include "activations.metal"
[[kernel]] void probe(const device float* x [[buffer(0)]], device float* tail_out [[buffer(1)]],
                      device float* tail_low_out [[buffer(2)]], device float* gelu_out [[buffer(3)]],
                      device float* gelu_low_out [[buffer(4)]], device float* gelu_tanh_out [[buffer(5)]],
                      device float* mish_out [[buffer(6)]], constant uint& n [[buffer(7)]],
                      uint tid [[thread_position_in_grid]]) {
  if (tid < n) {
    const float v = x[tid];
    tail_out[tid] = normal_tail_f32(normal_tail_argument(v));
    tail_low_out[tid] = normal_tail_f16(normal_tail_argument(v));
    gelu_out[tid] = Gelu::apply(v);
    gelu_low_out[tid] = ForOutput<Gelu, half>::type::apply(v);
    gelu_tanh_out[tid] = GeluTanh::apply(v);
    mish_out[tid] = Mish::apply(v);
  }
}
"""
OUTPUTS = ("tail", "tail_low", "gelu", "gelu_low", "gelu_tanh", "mish")


@pytest.fixture(scope="module")
def probe():
    """The activation functions of metal/activations.metal evaluated element-wise in fp32 on the emulator."""
    lib = compile_source(PROBE, name="probe.metal", include_dirs=[metal_dir()])

    def run(x: torch.Tensor) -> dict[str, torch.Tensor]:
        outs = {k: torch.full_like(x, float("nan")) for k in OUTPUTS}
        lib.dispatch("probe", x, *outs.values(), x.numel(), threads=(x.numel(),), group_size=(256,))
        return outs

    return run


def sweep() -> torch.Tensor:
    """A dense fp32 sweep over the whole range of the normal tail, and tiny magnitudes."""
    tiny = torch.logspace(-38, 0, 20001)
    return torch.cat([torch.linspace(-16, 16, 1_000_001), tiny, -tiny])


def lower_tail64(x: torch.Tensor) -> torch.Tensor:
    """Phi(-|x|) = erfc(|x| / sqrt 2) / 2 in float64."""
    return 0.5 * torch.erfc(x.double().abs() / math.sqrt(2))


# Measured maxima (this sweep, emulator): stated in metal/activations.metal's header; the bounds leave a little room.
TAIL_F32_MAX_REL = 5e-7
GELU_F32_MAX_REL = 1e-6  # 3.8e-7 for |x| < 13, 8.1e-7 where Phi(-|x|) is subnormal
TAIL_F16_MAX_REL = 3.5e-5
GELU_F16_MAX_REL = 3.5e-5


def test_normal_tail_keeps_relative_accuracy_down_to_its_underflow(probe):
    """Phi(-|x|) with fp32 outputs: relative accuracy over every normal fp32 value, 0 where it underflows."""
    x = sweep()
    got = probe(x)["tail"].double()
    want = lower_tail64(x)
    normal = want > torch.finfo(torch.float32).tiny
    rel = (got - want).abs()[normal] / want[normal]
    assert rel.max() <= TAIL_F32_MAX_REL, f"max relative error {rel.max():.3g} at x = {x[normal][rel.argmax()]:.9g}"
    assert torch.all(got[want < 1e-46] == 0)
    assert x[normal].abs().max() > 12.9  # the sweep reached fp32's normal range's end
    exact = 0.5 * x.double() * torch.erfc(-x.double() / math.sqrt(2))
    big = exact.abs() > torch.finfo(torch.float32).tiny
    rel = (probe(x)["gelu"].double() - exact).abs()[big] / exact.abs()[big]
    assert rel.max() <= GELU_F32_MAX_REL, f"gelu max relative error {rel.max():.3g} at x = {x[big][rel.argmax()]:.9g}"


def test_normal_tail_for_16_bit_outputs(probe):
    x = sweep()
    out = probe(x)
    want = lower_tail64(x)
    normal = want > torch.finfo(torch.float32).tiny
    rel = (out["tail_low"].double() - want).abs()[normal] / want[normal]
    assert rel.max() <= TAIL_F16_MAX_REL, f"max relative error {rel.max():.3g} at x = {x[normal][rel.argmax()]:.9g}"
    # GELU with 16-bit outputs: relative to the exact value wherever that is normal.
    exact = 0.5 * x.double() * torch.erfc(-x.double() / math.sqrt(2))
    big = exact.abs() > torch.finfo(torch.float32).tiny
    rel = (out["gelu_low"].double() - exact).abs()[big] / exact.abs()[big]
    assert rel.max() <= GELU_F16_MAX_REL, f"gelu max relative error {rel.max():.3g} at x = {x[big][rel.argmax()]:.9g}"


def test_special_values_of_the_normal_tail_and_gelu(probe):
    inf, nan = float("inf"), float("nan")
    x = torch.tensor([0.0, -0.0, inf, -inf, nan, 14.0, 14.85, 15.0, 200.0, -3e38, 3e38, -20.0])
    out = probe(x)
    for tail in (out["tail"], out["tail_low"]):
        torch.testing.assert_close(tail, lower_tail64(x).float(), equal_nan=True, rtol=TAIL_F16_MAX_REL, atol=1e-45)
    want = torch.tensor([0.0, -0.0, inf, nan, nan, 14.0, 14.85, 15.0, 200.0, -0.0, 3e38, -0.0])
    for gelu in (out["gelu"], out["gelu_low"]):
        torch.testing.assert_close(gelu, want, equal_nan=True, rtol=0, atol=0)
        assert str(gelu[1].item()) == str(gelu[9].item()) == str(gelu[11].item()) == "-0.0"  # x * a positive factor


# The functions in forms that stay accurate in float64 where they are tiny (torch's float64 F.gelu cancels below
# x = -8 and returns 0 below -9; the tanh form cancels the same way).
EXACT = {
    "gelu": lambda v: 0.5 * v * torch.erfc(-v / math.sqrt(2)),
    "gelu_tanh": lambda v: v * torch.sigmoid(2 * math.sqrt(2 / math.pi) * (v + 0.044715 * v**3)),
    "mish": lambda v: v * torch.tanh(F.softplus(v)),
}


@pytest.mark.parametrize("fn", list(EXACT))
def test_negative_tails_keep_full_relative_accuracy(probe, fn):
    """GELU through erfc, its tanh form as x * sigmoid(2u), Mish as x * n / (n + 2): no cancellation where the
    textbook formulas lose every digit in fp32 (torch's own fp32 results do, below x of about -5). The bound is a few
    fp32 roundings times (1 + the function's condition number |x f'(x) / f(x)|), which grows like x^2 in the tails."""
    x = torch.linspace(-14, 14, 200_001)
    got = probe(x)[fn].double()
    x64 = x.double().requires_grad_()
    want = EXACT[fn](x64)
    (slope,) = torch.autograd.grad(want.sum(), x64)
    want = want.detach()
    cond = (x.double() * slope / want).abs()
    normal = want.abs() > 1e-30
    rel = (got - want).abs()[normal] / want.abs()[normal]
    bound = 6 * 2**-24 * (1 + cond[normal])
    worst = (rel / bound).argmax()
    assert torch.all(rel <= bound), f"{fn}: relative error {rel[worst]:.3g} at x = {x[normal][worst]:.6g}"
    assert x[normal].min() < -9  # the sweep reached deep into the tail


# ---- the ops ----


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", UNARY)
def test_non_finite_and_extreme_inputs_match_the_reference(name, dtype):
    big = torch.finfo(dtype).max
    x = torch.tensor([float("inf"), float("-inf"), float("nan"), 0.0, -0.0, -3.0, 3.0, 20.0, 20.5, -20.0, 90.0,
                      -90.0, 1e-30, big, -big]).to(dtype)
    got = emulated(name, x)
    want = family(name).reference(x.double()).to(dtype)
    result = compare(got, want, dtype)  # NaN must match NaN, inf the same inf
    assert result.ok, f"{name}: {result}\n{got}\n{want}"


@pytest.mark.parametrize("act_name", list(epilogue.ACTIVATIONS))
def test_bias_act_non_finite_values(act_name):
    x = torch.tensor([[float("inf"), float("-inf"), float("nan"), 0.0, -5.0, 5.0, 30.0, -30.0]])
    bias = torch.tensor([0.0, 0.0, 0.0, -0.0, 0.5, -0.5, 0.0, 0.0])
    got = emulated("bias_act", x, bias, act_name, -1)
    result = compare(got, epilogue.reference(x.double(), bias.double(), act_name, -1), torch.float32)
    assert result.ok, f"{act_name}: {result}"


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_matches_torch_nn_gelu(approximate):
    x = randn(7, 129, scale=3)
    torch.testing.assert_close(emulated("gelu", x, approximate), torch.nn.GELU(approximate)(x))
    a, b = randn(4, 65, seed=1, scale=3), randn(4, 65, seed=2)
    torch.testing.assert_close(emulated("geglu", a, b, approximate), F.gelu(a, approximate=approximate) * b)


def test_default_arguments_run_the_kernel(monkeypatch):
    """The dispatcher drops trailing arguments left at their defaults; plans and validation still see them."""
    launches = []
    backend = runtime.BACKENDS["emulator"]
    real = backend.launch
    monkeypatch.setattr(backend, "launch", lambda fam, plan, t: (launches.append(plan.kernel), real(fam, plan, t)))
    x, b = randn(3, 40, scale=3), randn(40, seed=1)
    torch.testing.assert_close(emulated("gelu", x), F.gelu(x))
    torch.testing.assert_close(emulated("geglu", x, x * 0.5), F.gelu(x) * (x * 0.5))
    torch.testing.assert_close(emulated("geglu_split", x), F.gelu(x[:, :20]) * x[:, 20:])
    torch.testing.assert_close(emulated("bias_act", x, b), x + b)
    with use_backend("emulator"):
        torch.testing.assert_close(torch.ops.mpskernels.gelu(x, approximate="tanh"), F.gelu(x, approximate="tanh"))
        torch.testing.assert_close(torch.ops.mpskernels.bias_act(x, b, act="silu"), F.silu(x + b))
        nchw, c = randn(2, 3, 4, 5, seed=2), randn(3, seed=3)
        torch.testing.assert_close(torch.ops.mpskernels.bias_act(nchw, c, dim=1), nchw + c.view(3, 1, 1))
    assert launches == ["gelu_float32", "geglu_float32", "geglu_split_float32", "bias_act_none_float32",
                        "gelu_tanh_float32", "bias_act_silu_float32", "bias_act_channels_none_float32"]


def test_default_arguments_under_opcheck():
    x = randn(4, 34)
    for name, args in (("gelu", (x,)), ("geglu", (x, x)), ("geglu_split", (x,)), ("bias_act", (x, x[0]))):
        torch.library.opcheck(registry.op(name).default, args)


def test_split_ops_equal_the_chunked_two_tensor_ops():
    x = randn(3, 5, 2 * 45, scale=3)
    a, b = x.chunk(2, -1)
    torch.testing.assert_close(emulated("swiglu_split", x), emulated("swiglu", a.contiguous(), b.contiguous()),
                               rtol=0, atol=0)
    for approximate in ("none", "tanh"):
        torch.testing.assert_close(emulated("geglu_split", x, approximate),
                                   emulated("geglu", a.contiguous(), b.contiguous(), approximate), rtol=0, atol=0)


# ---- launch geometry: rows longer than one threadgroup, more rows than one threadgroup holds ----


@pytest.mark.parametrize("name", ["swiglu_split", "geglu_split"])
@pytest.mark.parametrize("shape", [(2, 2 * 1031), (300, 6), (70, 2 * 33)], ids=str)
def test_split_long_rows_and_many_rows(name, shape):
    check(name, randn(*shape, scale=3))


@pytest.mark.parametrize(
    "shape, dim",
    [((2, 1031), -1), ((300, 3), -1), ((2, 5, 1, 1), 1), ((3, 7, 300), 1), ((1, 2, 3, 4, 5), 2), ((70, 33), 0)],
    ids=str,
)
def test_bias_act_geometry(shape, dim):
    x = randn(*shape, scale=2)
    check("bias_act", x, randn(shape[dim], seed=1), "gelu", dim)


def test_bias_act_matches_linear_and_conv_epilogues():
    lin = torch.nn.Linear(24, 33)
    x = randn(5, 24)
    y = torch.nn.functional.linear(x, lin.weight)
    torch.testing.assert_close(emulated("bias_act", y, lin.bias.detach(), "gelu", -1), F.gelu(lin(x)).detach())
    conv = torch.nn.Conv2d(3, 6, 3)
    img = randn(2, 3, 9, 8, seed=1)
    y = F.conv2d(img, conv.weight)
    torch.testing.assert_close(emulated("bias_act", y.detach(), conv.bias.detach(), "hardswish", 1),
                               F.hardswish(conv(img)).detach())


def test_plans_pick_the_layout():
    meta = lambda *s: TensorMeta(s, torch.float16)  # noqa: E731
    rows = epilogue.plan(meta(8, 33), meta(33), "relu", -1)
    # One 16-byte chunk (8 halves) per thread.
    assert rows.kernel == "bias_act_relu_float16" and rows.threads == (5, 8, 1) and rows.group_size == (8, 32, 1)
    chans = epilogue.plan(meta(2, 3, 10, 10), meta(3), "silu", 1)
    assert chans.kernel == "bias_act_channels_silu_float16" and chans.threads == (13, 6, 1)
    assert epilogue.plan(meta(2, 3, 1, 1), meta(3), "silu", 1).kernel == "bias_act_silu_float16"  # inner of 1
    split = act.split_plan("geglu")(meta(4, 2 * 2000), "tanh")
    assert split.kernel == "geglu_tanh_split_float16" and split.threads == (250, 4, 1)
    assert split.group_size == (256, 1, 1)
    assert act.unary_plan("silu")(TensorMeta((10, 9), torch.float32)).threads == (23, 1, 1)  # 4 floats per thread


# ---- the 16-byte fast path and its guarded tail ----


def around_chunks(dtype, chunks):
    """Element counts at `chunks` whole 16-byte chunks, one more and one fewer, and half a chunk more."""
    n = act.chunk_elements(dtype)
    return [chunks * n + d for d in (-1, 0, 1, n // 2)]


def offset_view(t, offset):
    """t's values in a contiguous tensor bound `offset` elements into its storage (never 16-byte aligned)."""
    flat = torch.empty(t.numel() + offset, dtype=t.dtype)
    flat[offset:] = t.reshape(-1)
    return flat[offset:].view(t.shape)


@pytest.mark.parametrize("bounds", ["guarded", "own-memory"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_fast_path_and_tail(dtype, bounds, monkeypatch):
    """Sizes that hit whole 16-byte chunks, the element-wise tail and unaligned rows, on the emulator's guarded
    copies (which end at a page, so their alignment follows their size) and on the tensors' own memory, also bound
    at an element offset."""
    monkeypatch.setenv("MPSKERNELS_EMULATOR_BOUNDS", "1" if bounds == "guarded" else "0")
    before = launches.count()
    for offset in (0, 1):
        for n in around_chunks(dtype, 20):
            x, b = randn(n, seed=n, dtype=dtype), randn(n, seed=n + 1, dtype=dtype)
            check("silu", offset_view(x, offset))
            check("swiglu", offset_view(x, offset), b)
        for half in around_chunks(dtype, 3):
            check("geglu_split", offset_view(randn(3, 2 * half, seed=half, dtype=dtype), offset))
            x = offset_view(randn(3, half, seed=half, dtype=dtype), offset)
            check("bias_act", x, randn(half, seed=7, dtype=dtype), "gelu", -1)
            check("bias_act", offset_view(randn(2, 3, half, seed=half, dtype=dtype), offset),
                  randn(3, seed=8, dtype=dtype), "silu", 1)
    assert launches.count() == before + 2 * 4 * 5  # every call ran its kernel: none fell back to the reference


# ---- usage errors and fallbacks ----


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: torch.ops.mpskernels.gelu(torch.randn(3), "fast"), ValueError, r"approximate must be 'none' or"),
        (lambda: torch.ops.mpskernels.gelu(torch.arange(3)), TypeError, r"mpskernels\.gelu: x has dtype torch\.int64"),
        (lambda: torch.ops.mpskernels.mish(torch.randn(3, dtype=torch.float64)), TypeError, "supported dtypes"),
        (lambda: torch.ops.mpskernels.swiglu(torch.randn(3, 4), torch.randn(4)), ValueError, "same shape"),
        (lambda: torch.ops.mpskernels.swiglu(torch.randn(4), torch.randn(4).half()), TypeError, "one dtype"),
        (lambda: torch.ops.mpskernels.swiglu_split(torch.randn(3, 5)), ValueError, "last dimension must be even"),
        (lambda: torch.ops.mpskernels.geglu_split(torch.tensor(1.0)), ValueError, "last dimension must be even"),
        (lambda: torch.ops.mpskernels.bias_act(torch.randn(2, 4), torch.randn(4), "swish"), ValueError,
         "act must be one of"),
        (lambda: torch.ops.mpskernels.bias_act(torch.randn(2, 4), torch.randn(2)), ValueError,
         r"bias must have shape \(4,\)"),
        (lambda: torch.ops.mpskernels.bias_act(torch.randn(2, 4), torch.randn(4), "relu", 2), ValueError,
         "out of range"),
        (lambda: torch.ops.mpskernels.bias_act(torch.tensor(1.0), torch.randn(1)), ValueError, "at least one"),
        (lambda: torch.ops.mpskernels.bias_act(torch.randn(2, 4), torch.randn(1, 4)), ValueError, "bias must"),
    ],
)
def test_usage_errors(call, error, message):
    with use_backend("emulator"), pytest.raises(error, match=message):
        call()


def test_2_to_the_32_elements_fall_back_to_the_reference(monkeypatch, caplog):
    """Shapes only (meta tensors): the 32-bit index constraint sends the call to the reference, launching nothing."""
    launched = []
    monkeypatch.setattr(runtime.BACKENDS["emulator"], "launch", lambda *a: launched.append(a))
    monkeypatch.delenv("MPSKERNELS_BACKEND", raising=False)  # meta tensors take the automatic choice: none
    registry._logged_fallbacks.clear()
    big = torch.empty(2**31, 2, device="meta")
    calls = {
        "silu": (big,), "gelu": (big, "tanh"), "mish": (big,), "hardswish": (big,), "swiglu": (big, big),
        "geglu": (big, big, "none"), "swiglu_split": (big,), "geglu_split": (big,),
        "bias_act": (big, torch.empty(2, device="meta"), "gelu", -1),
    }
    with caplog.at_level(logging.INFO, logger="mpskernels"):
        for name, args in calls.items():
            out = registry.run(family(name), *args)
            assert out.device.type == "meta"
            assert tuple(out.shape) == ((2**31, 1) if name.endswith("_split") else (2**31, 2))
    assert launched == []
    messages = [r.getMessage() for r in caplog.records]
    for name in calls:
        assert any(f"mpskernels.{name}: using the PyTorch reference: " in m and "32-bit" in m for m in messages), name


# ---- issue 16, item 6: one non-finite contract for every backend (docs/kernels.md) ----


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_references_and_kernels_follow_the_formula_at_the_edges(dtype):
    """F.gelu's vectorised CPU kernel gives NaN at +inf and inf at 3e38, F.hardswish inf at 3e38; the formulas
    give +inf and 3e38 (x * Phi(x), x * relu6(x + 3) / 6), as the kernels do. -inf gives -inf * 0 = NaN."""
    inf = float("inf")
    x = torch.tensor([inf, -inf, float("nan"), 3e38, -3e38, 20.0, -20.0, 0.0]).to(dtype)
    want = {
        "gelu": [inf, None, None, 3e38, -0.0, 20.0, -0.0, 0.0],
        "hardswish": [inf, None, None, 3e38, -0.0, 20.0, -0.0, 0.0],
    }
    from mpskernels.kernels import activations as acts
    from mpskernels.kernels import epilogue

    for name, values in want.items():
        expected = torch.tensor([math.nan if v is None else v for v in values]).to(dtype)
        reference = getattr(acts, f"{name}_reference")(x)
        with use_backend("emulator"):
            kernel = getattr(torch.ops.mpskernels, name)(x)
            fused = torch.ops.mpskernels.bias_act(x[None], torch.zeros(8, dtype=dtype), name)[0]
        for got in (reference, kernel, fused, epilogue.reference(x[None], torch.zeros(8, dtype=dtype), name)[0]):
            torch.testing.assert_close(got, expected, rtol=0, atol=0, equal_nan=True)


# ---- every activation's 16-byte fast path and guarded tail, in every dtype (16-bit outputs take Op::Low) ----


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_every_activation_at_whole_chunks_and_one_more_and_fewer(dtype):
    """Element counts at multiples of the chunk (4 floats, 8 halves) and one more and one fewer, spanning the
    functions' whole range (both GELU regimes, Mish's identity cut-off, HardSwish's three pieces)."""
    before = launches.count()
    for n in around_chunks(dtype, 40)[:3]:
        x = torch.linspace(-25, 25, n).to(dtype)
        for name in UNARY:
            check(name, x)
        check("gelu", x, "tanh")
        b = randn(n, seed=n, dtype=dtype)
        check("swiglu", x, b)
        check("geglu", x, b, "none")
        check("geglu", x, b, "tanh")
        for name in ("sigmoid", "tanh", "gelu", "mish", "silu"):
            check("bias_act", x.view(1, n), b, name, -1)
    assert launches.count() == before + 3 * 13  # every call ran its kernel
