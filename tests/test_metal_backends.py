"""The Python side of the two Metal backends, run here with the emulator standing in for the GPU.

No Mac is available, so `torch.mps.compile_shader` and the compiled bridge are replaced by fakes that compile the
text they are given with the CPU emulator. The compile_shader fake is a model of PyTorch's implementation (how it
binds tensors and Python scalars, reads threads/group_size, and fails), built from the facts docs/architecture.md
lists with their PyTorch source lines; its rules are pinned by tests below. What is tested is everything the
backends do above the GPU: the specialised MSL source (function constants folded in), argument order, scalar
packing, placeholders for switched-off buffers, and the grid.
"""

import types

import numpy as np
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


class CompileShaderModel:
    """torch.mps.compile_shader as PyTorch implements it, with the CPU emulator as the GPU and CPU tensors standing in
    for MPS ones. Each rule cites the fact it models (docs/architecture.md, "Facts the metal-jit backend relies on").

    F1  the Python side embeds headers found under torch/include (others, like <metal_stdlib>, stay) and compiles at
        once; a compile failure raises SyntaxError, any other library failure RuntimeError; the source is read as
        ASCII.
    F2  `lib.<name>` of a kernel the library lacks raises RuntimeError ("Failed to create function state object
        for: <name>"), not AttributeError: hasattr(lib, name) raises too.
    """

    def __init__(self, source: str):
        from pathlib import Path

        from torch.utils._cpp_embed_headers import _embed_headers

        if not source.isascii():
            raise RuntimeError("Failed to create metal library, error: the source is not ASCII")  # F1
        text = _embed_headers([line + "\n" for line in source.split("\n")],
                              [Path(torch.__file__).parent / "include"], set())  # F1, PyTorch's own function
        try:
            self.emulated = compile_source(text, name="program_source")
            self.emulated.specialize({})  # Metal compiles the whole library at once
        except msl.MSLError as e:
            raise SyntaxError(str(e)) from None  # F1
        self.sources = [source]

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        if name not in self.emulated.kernels:
            raise RuntimeError(f"Failed to create function state object for: {name}")  # F2
        return ModelKernel(self.emulated, name)


def _dims(value, what):
    """F5: threads / group_size: None, an int (a bool is an int), or a sequence of 1 to 3 ints."""
    if value is None:
        return None
    if isinstance(value, int):
        return [int(value)]
    dims = [int(v) for v in value]
    if not 0 < len(dims) < 4:
        raise RuntimeError(f"{what} must have 1 to 3 dimensions, got {len(dims)}")
    return dims


def _raw_storage(t: torch.Tensor) -> torch.Tensor:
    """F3: what a tensor argument binds: its storage's buffer from storage_offset on, strides ignored."""
    elements = t.untyped_storage().nbytes() // t.element_size() - t.storage_offset()
    return t.as_strided((elements,), (1,), t.storage_offset())


def _python_value(value) -> bytes:
    """F4: a Python float is setBytes'd as fp32, an int or a bool as int64, a list by its first element's type."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise RuntimeError("Empty list/tuple can not be an argument to metal kernel")
        if isinstance(value[0], int):
            return np.asarray(value, dtype=np.int64).tobytes()
        if isinstance(value[0], float):
            return np.asarray(value, dtype=np.float32).tobytes()
        raise NotImplementedError("lists of tensors bind as GPU addresses (argument buffers): not modelled")
    if isinstance(value, float):
        return np.float32(value).tobytes()
    if isinstance(value, int):
        return np.int64(value).tobytes()
    raise RuntimeError("Unsupported argument type")


class ModelKernel:
    """`lib.<kernel>(*args, threads=None, group_size=None)`.

    F3  positional argument i binds to [[buffer(i)]]: a tensor as its storage from its storage offset;
    F4  Python scalars at fixed widths (fp32, int64);
    F5  threads defaults to the first tensor argument's numel (1-D); group_size, when given, must have as many
        dimensions as threads; a 1-D dispatch without group_size takes min(threads, max threads per threadgroup),
        a 2-D/3-D one (max, 1, 1), a group_size's missing dimensions 1; a threadgroup over the pipeline's maximum
        raises ValueError.
    """

    calls: list = []  # (kernel, threads, group_size) as given, for the tests

    def __init__(self, library, name):
        self.library, self.name = library, name

    def __call__(self, *args, threads=None, group_size=None):
        ModelKernel.calls.append((self.name, [type(a).__name__ for a in args], threads, group_size))
        threads, group = _dims(threads, "threads"), _dims(group_size, "group_size")
        bound = []
        for value in args:
            if isinstance(value, torch.Tensor):
                bound.append(_raw_storage(value))
                threads = threads or [value.numel()]
            else:
                bound.append(_python_value(value))
        if threads is None:
            raise RuntimeError("Number of threads is undefined or has wrong dimension")
        if group is not None and len(group) != len(threads):
            raise RuntimeError("size and group_size must have same number of dimensions")
        limit = self.library.kernels[self.name].max_total_threads_per_threadgroup or 1024
        if group is None:
            group = [min(threads[0], limit)] if len(threads) == 1 else [limit]
        group = (group + [1, 1])[:3]
        if group[0] * group[1] * group[2] > limit:
            raise ValueError(f"Threadgroup size exceeds {limit} limit")
        self.library.dispatch(self.name, *bound, threads=tuple((threads + [1, 1])[:3]), group_size=tuple(group))


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
        return CompileShaderModel(source)

    monkeypatch.setattr(torch.mps, "compile_shader", compile_shader, raising=False)
    bridge = FakeBridge()
    monkeypatch.setattr(metal, "_bridge", lambda: types.SimpleNamespace(launch=bridge.launch))
    for cls in (JitBackend, MetalBackend):
        monkeypatch.setattr(cls, "device_types", ("cpu",))
        monkeypatch.setattr(cls, "unavailable", lambda self: None)
    monkeypatch.setattr(registry, "poison_outputs", True)
    from mpskernels.runtime import jit

    jit._library.cache_clear()
    monkeypatch.setattr(ModelKernel, "calls", [])
    yield types.SimpleNamespace(compiled=compiled, bridge=bridge)
    jit._library.cache_clear()


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


# The model's rules, pinned on small kernels (each would fail if the model bound or dispatched otherwise).
PROBE = """#include <metal_stdlib>
using namespace metal;
kernel void widths(device float* out [[buffer(0)]], constant half& h [[buffer(1)]], constant uint& u [[buffer(2)]],
                   constant float& f [[buffer(3)]], constant bool& b [[buffer(4)]], constant int& n [[buffer(5)]],
                   uint i [[thread_position_in_grid]]) {
  if (i == 0) { out[0] = float(h); out[1] = float(u); out[2] = f; out[3] = b ? 1.0f : 0.0f; out[4] = float(n); }
}
kernel void copy(device const float* x [[buffer(0)]], device float* y [[buffer(1)]],
                 uint i [[thread_position_in_grid]]) {
  y[i] = x[i];
}
"""


@pytest.fixture(scope="module")
def probe():
    return CompileShaderModel(PROBE)


def test_python_scalars_go_at_fixed_widths_so_the_jit_backend_sends_typed_bytes(probe):
    """F4: a Python float arrives as fp32 bytes, so a `constant half&` reads its low half (zero for 1.5); an int
    arrives as int64, whose low bytes are right for uint, bool and int. The backend's one-element tensors of the
    exact MSL type read right for every type."""
    from mpskernels.runtime.jit import _scalar_tensor

    out = torch.zeros(5)
    probe.widths(out, 1.5, 7, 2.5, True, -3, threads=1)
    assert out.tolist() == [0.0, 7.0, 2.5, 1.0, -3.0]
    typed = [_scalar_tensor(v, t, "cpu") for v, t in ((1.5, "half"), (7, "uint"), (2.5, "float"), (True, "bool"),
                                                       (-3, "int"))]
    probe.widths(out, *typed, threads=1)
    assert out.tolist() == [1.5, 7.0, 2.5, 1.0, -3.0]


def test_a_tensor_binds_at_its_storage_offset_with_its_strides_ignored(probe):
    """F3: x[1:] is read from its first element; a transposed view is read in storage order."""
    x = torch.arange(12.0).reshape(3, 4)
    y = torch.zeros(8)
    probe.copy(x[1:], y)
    assert torch.equal(y, x[1:].flatten())
    y = torch.zeros(12)
    probe.copy(x.t(), y)
    assert torch.equal(y, x.flatten()) and not torch.equal(y, x.t().flatten())


def test_threads_and_group_size_read_as_pytorch_reads_them(probe):
    """F5: threads defaults to the first tensor's numel; an int is one dimension; dimensions must agree."""
    x = torch.arange(1.0, 13.0)
    y = torch.zeros(12)
    probe.copy(x, y, threads=5)
    assert y.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0] + [0.0] * 7
    probe.copy(x, y, threads=(12, 1, 1), group_size=[4, 1, 1])
    assert torch.equal(y, x)
    with pytest.raises(RuntimeError, match="same number of dimensions"):
        probe.copy(x, y, threads=(12, 1, 1), group_size=4)
    with pytest.raises(RuntimeError, match="1 to 3 dimensions"):
        probe.copy(x, y, threads=(12, 1, 1, 1))
    with pytest.raises(ValueError, match="Threadgroup size exceeds"):
        probe.copy(x, y, threads=12, group_size=4096)


def test_a_bad_kernel_name_or_source_raises_as_pytorch_raises(probe):
    """F2, F1: RuntimeError for a kernel the library lacks (hasattr does not answer False), SyntaxError for
    source Metal refuses."""
    with pytest.raises(RuntimeError, match="Failed to create function state object for: nope"):
        probe.nope
    with pytest.raises(RuntimeError):
        hasattr(probe, "nope")
    with pytest.raises(SyntaxError):
        CompileShaderModel("kernel void broken(device float* x [[buffer(0)]]) { x[0] = undeclared; }")


def test_the_jit_backend_binds_views_and_strided_inputs_correctly(fake_metal):
    """What F3 asks of the backend: a view that starts inside its storage, and a transposed input, give the right
    answer (the registry makes inputs contiguous; the offset is honoured by the binding)."""
    from mpskernels.kernels.rms_norm import reference

    base = torch.randn(5, 24)
    w = torch.rand(24)
    with use_backend("metal-jit"):
        for x in (base[1:], torch.randn(24, 4).t()):
            got = torch.ops.mpskernels.rms_norm(x, w, 1e-5)
            assert compare(got, reference(x.double(), w.double(), 1e-5), torch.float32).ok


def test_the_jit_backend_sends_only_tensors_and_three_dimensional_grids(fake_metal):
    """F4, F5: no Python scalar reaches compile_shader, and threads/group_size are tuples of three."""
    with use_backend("metal-jit"):
        torch.ops.mpskernels.rms_norm(torch.randn(3, 10), None, 1e-5)
    ((kernel, kinds, threads, group_size),) = ModelKernel.calls
    assert kernel == "rms_norm_float32" and set(kinds) == {"Tensor"} and len(kinds) == 5
    assert isinstance(threads, tuple) and isinstance(group_size, tuple) and len(threads) == len(group_size) == 3


def test_the_jit_backend_refuses_non_ascii_source_at_its_line(fake_metal, monkeypatch):
    from mpskernels.runtime import jit

    real = jit.specialised_source

    def with_an_accent(source, constants):
        return "#include <metal_stdlib>\n// caf\u00e9\n" + real(source, constants)[0], "digest"

    monkeypatch.setattr(jit, "specialised_source", with_an_accent)
    with use_backend("metal-jit"), pytest.raises(runtime.BackendError, match=r"line 2, column 7: a non-ASCII") as e:
        torch.ops.mpskernels.rms_norm(torch.randn(2, 8), None, 1e-5)
    assert isinstance(e.value.__cause__, jit.JitUnsupported)
    assert fake_metal.compiled == []


def test_the_jit_backend_refuses_a_plan_that_needs_threadgroup_memory(fake_metal):
    from mpskernels.kernels.spec import LaunchPlan
    from mpskernels.runtime.jit import JitUnsupported

    family = next(f for f in FAMILIES if f.source == "rms_norm.metal")
    plan = LaunchPlan("rms_norm_float32", ("x",), (32, 1, 1), (32, 1, 1), threadgroup_memory={0: 256})
    with pytest.raises(JitUnsupported, match="threadgroup memory"):
        JitBackend().launch(family, plan, {"x": torch.zeros(4)})
    assert fake_metal.compiled == []
