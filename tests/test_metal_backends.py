"""The Python side of the two Metal backends, run here with the emulator standing in for the GPU.

No Mac is available, so `torch.mps.compile_shader` and the compiled bridge are replaced by fakes that compile the
text they are given with the CPU emulator and keep the same call shape. What is tested is everything the backends
do above the GPU: the specialised MSL source (function constants folded in), argument order, scalar packing,
placeholders for switched-off buffers, and the grid.
"""

import types

import pytest
import torch

from mpskernels import msl, registry, runtime
from mpskernels.emulator import compile_source
from mpskernels.kernels import FAMILIES
from mpskernels.kernels.spec import Scalar
from mpskernels.runtime import use_backend
from mpskernels.runtime.jit import JitBackend
from mpskernels.runtime import metal
from mpskernels.runtime.metal import MetalBackend
from mpskernels.runtime.metal_source import pack_scalar, specialised_source
from mpskernels.tolerances import compare
from op_cases import run_op, run_reference


class FakeShaderLibrary:
    """compile_shader's library: lib.<kernel>(*args, threads=..., group_size=...)."""

    def __init__(self, source: str):
        self.emulated = compile_source(source, name="compile_shader.metal")
        self.sources = [source]

    def __getattr__(self, name):
        return getattr(self.emulated, name)


class FakeBridge:
    def __init__(self):
        self.libraries = {}
        self.calls = []  # (kernel, argument types) per dispatch
        self.launches = []  # the kernels of each bridge call

    def launch(self, source, source_hash, dispatches):
        """Like the bridge: every dispatch of one op call, in order (each finishes before the next starts, as the
        bridge's memory barrier between consecutive dispatches guarantees on the GPU)."""
        lib = self.libraries.setdefault(source_hash, compile_source(source, name="bridge.metal"))
        for kernel, args, threads, group_size, threadgroup_memory in dispatches:
            self.calls.append((kernel, [type(a).__name__ for a in args]))
            lib.dispatch(kernel, *args, threads=tuple(threads), group_size=tuple(group_size),
                         threadgroup_memory=dict(threadgroup_memory))
        self.launches.append([d[0] for d in dispatches])


@pytest.fixture
def fake_metal(monkeypatch):
    """Lets both Metal backends run on CPU tensors through the fakes."""
    compiled = []

    def compile_shader(source):
        compiled.append(source)
        return FakeShaderLibrary(source)

    monkeypatch.setattr(torch.mps, "compile_shader", compile_shader, raising=False)
    bridge = FakeBridge()
    monkeypatch.setattr(metal, "_bridge", lambda: types.SimpleNamespace(launch=bridge.launch))
    for cls in (JitBackend, MetalBackend):
        monkeypatch.setattr(cls, "device_types", ("cpu",))
        monkeypatch.setattr(cls, "unavailable", lambda self: None)
    monkeypatch.setattr(registry, "poison_outputs", True)
    from mpskernels.runtime import jit

    jit._library.cache_clear()
    return types.SimpleNamespace(compiled=compiled, bridge=bridge)


CASES = [
    pytest.param(backend, family, dtype, id=f"{backend}-{family.name}-{str(dtype)[6:]}")
    for backend in ("metal-jit", "metal")
    for family in FAMILIES
    for dtype in family.dtypes
]


@pytest.mark.parametrize("backend, family, dtype", CASES)
def test_metal_backends_bind_the_specialised_source_correctly(fake_metal, backend, family, dtype):
    for args in family.examples(dtype):
        got = run_op(family, args, backend)
        for out, want in zip(got, run_reference(family, args, torch.float64)):
            result = compare(out, want, out.dtype if out.is_floating_point() else torch.float32)
            assert result.ok, str(result)


def test_specialised_source_has_no_function_constants_left():
    for constants in ({"has_weight": True}, {"has_weight": False}):
        text, digest = specialised_source("rms_norm.metal", tuple(constants.items()))
        assert text.startswith("#include <metal_stdlib>")
        assert "function_constant" not in text
        unit = msl.read_source(text, "specialised.metal")
        assert not unit.program.constants
        assert {"rms_norm_float32", "rms_norm_float16", "rms_norm_bfloat16"} <= {
            e.host_name for e in unit.program.entries}
    assert specialised_source("rms_norm.metal", (("has_weight", True),))[1] != digest


def test_jit_compiles_each_specialisation_once(fake_metal):
    x, w = torch.randn(2, 40), torch.rand(40)
    with use_backend("metal-jit"):
        for _ in range(3):
            torch.ops.mpskernels.rms_norm(x, w, 1e-5)
            torch.ops.mpskernels.rms_norm(x, None, 1e-5)
    assert len(fake_metal.compiled) == 2


def test_bridge_receives_tensors_and_scalar_bytes_in_buffer_order(fake_metal):
    x = torch.randn(3, 10)
    with use_backend("metal"):
        torch.ops.mpskernels.rms_norm(x, None, 1e-5)
    # x, placeholder for the switched-off weight, out, eps bytes, cols bytes
    assert fake_metal.bridge.calls == [("rms_norm_float32", ["Tensor", "Tensor", "Tensor", "bytes", "bytes"])]


@pytest.mark.parametrize("boolean_mask", [False, True], ids=["no-mask", "bool-mask"])
@pytest.mark.parametrize("backend", ["metal", "metal-jit"])
def test_a_two_pass_plan_runs_in_order_in_one_bridge_call(fake_metal, monkeypatch, backend, boolean_mask):
    """Scratch binds like any tensor; the switched-off mask buffer of each kind gets a placeholder of its type."""
    from mpskernels.kernels import attention as attn

    monkeypatch.setattr(registry.RUNNERS["attention"], "plans", {})
    monkeypatch.setattr(attn, "DECODE_MIN_BLOCK_KEYS", 16)
    monkeypatch.setattr(attn, "DECODE_PARTIAL_SHARE", 1)
    monkeypatch.setattr(attn, "DECODE_BLOCK_TILES", 1)  # blocks of one 32-key tile, so 50 keys split
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(*s, generator=gen) for s in ((1, 4, 1, 64), (1, 1, 50, 64), (1, 1, 50, 64)))
    mask = torch.arange(50) % 3 != 1 if boolean_mask else None
    with use_backend(backend):
        got = torch.ops.mpskernels.attention(q, k, v, mask, False, None, 49)
    assert compare(got, attn.reference(q.double(), k.double(), v.double(), mask, False, None, 49),
                   torch.float32).ok
    if backend == "metal":  # both dispatches in one bridge call, the split first
        assert fake_metal.bridge.launches == [["attention_decode_split_d64_float32",
                                               "attention_decode_merge_d64_float32"]]
        assert fake_metal.bridge.calls[1] == ("attention_decode_merge_d64_float32",
                                              ["Tensor", "Tensor", "Tensor", "Tensor", "bytes"])
    else:
        assert len(fake_metal.compiled) == 1  # both kernels from one specialised library


@pytest.mark.parametrize(
    "scalar, expected",
    [
        (Scalar(1.5, "float"), b"\x00\x00\xc0\x3f"),
        (Scalar(1.5, "half"), b"\x00\x3e"),
        (Scalar(1.5, "bfloat"), b"\xc0\x3f"),
        (Scalar(7, "uint"), b"\x07\x00\x00\x00"),
        (Scalar(-2, "int"), b"\xfe\xff\xff\xff"),
        (Scalar(True, "bool"), b"\x01"),
    ],
)
def test_scalars_are_packed_as_their_msl_type(scalar, expected):
    assert pack_scalar(scalar) == expected


def test_scalar_types_are_checked():
    with pytest.raises(ValueError, match="unsupported scalar type 'double'"):
        Scalar(1.0, "double")


def test_backends_report_why_they_are_unavailable_here():
    if torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    assert "MPS is not available" in runtime.BACKENDS["metal-jit"].unavailable()
    assert "MPS is not available" in runtime.BACKENDS["metal"].unavailable()


def test_launch_plan_lists_its_dispatches_and_declares_scratch():
    from mpskernels.kernels.spec import Dispatch, LaunchPlan, Scratch, allocate_scratch

    second = Dispatch("merge", ("part", "out"), (64, 1, 1), (64, 1, 1))
    plan = LaunchPlan("split", ("x", "part"), (128, 2, 1), (32, 1, 1), then=(second,),
                      scratch=(Scratch("part", (2, 3), torch.float32),))
    assert [d.kernel for d in plan.dispatches] == ["split", "merge"] and plan.dispatches[0].threads == (128, 2, 1)
    assert not plan.is_empty()
    assert LaunchPlan("split", (), (128, 1, 1), (32, 1, 1), then=(Dispatch("m", (), (0, 1, 1), (1, 1, 1)),)).is_empty()
    scratch = allocate_scratch(plan, torch.device("cpu"), poison=True)
    assert scratch["part"].shape == (2, 3) and scratch["part"].isnan().all()
    with pytest.raises(ValueError, match="scratch buffer names repeat"):
        LaunchPlan("k", (), (1, 1, 1), (1, 1, 1), scratch=(Scratch("a", (1,), torch.float32),) * 2)
