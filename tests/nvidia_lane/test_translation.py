"""The CUDA translation of every shipped .metal file, checked as text (no GPU, no NVRTC needed): one extern "C"
__global__ entry per host name, threadgroup variables as __shared__, function constants folded, MSL type names
renamed, no MSL-only words left, and lines kept where the .metal file has them."""

import re

import pytest

from mpskernels._paths import metal_dir
from mpskernels.cuda import cuda_source, to_cuda
from mpskernels.cuda.names import RENAMED
from mpskernels.cuda.source import unit
from mpskernels.msl import Specialization, read_source

SOURCES = sorted(p.name for p in metal_dir().glob("*.metal"))


def specialisations(source):
    """No constant defined, and every bool constant true."""
    constants = unit(source).program.constants
    every_bool = tuple((n, True) for n, c in sorted(constants.items()) if c.type_text.split()[-1] == "bool")
    return [(), every_bool]


CASES = [pytest.param(s, spec, id=f"{s}-{'all-true' if spec else 'undefined'}")
         for s in SOURCES for spec in specialisations(s)]


def words(text):
    return set(re.findall(r"\b[A-Za-z_][A-Za-z0-9_]*\b", text))


@pytest.mark.parametrize("source, spec", CASES)
def test_every_host_name_gets_one_global_entry(source, spec):
    program = unit(source).program
    cuda = cuda_source(source, spec)
    assert set(cuda.entries) == {e.host_name for e in program.entries}
    symbols = [e.symbol for e in cuda.entries.values()]
    assert len(set(symbols)) == len(symbols)
    for host_name, entry in cuda.entries.items():  # named after the kernel, for profilers and ptxas logs
        assert entry.symbol.startswith("mtl_entry_") and entry.symbol.endswith(re.sub(r"\W", "_", host_name))
    for entry in cuda.entries.values():
        assert re.search(rf'extern "C" __global__ void __launch_bounds__\({entry.max_threads}\) {entry.symbol}\(',
                         cuda.text), entry.host_name


@pytest.mark.parametrize("source, spec", CASES)
def test_no_msl_only_words_or_clashing_type_names_remain(source, spec):
    text = cuda_source(source, spec).text
    left = words(text) & ({"kernel", "device", "threadgroup", "thread", "constant", "is_function_constant_defined"}
                          | set(RENAMED))
    assert not left
    assert "[[" not in text


@pytest.mark.parametrize("source", SOURCES)
def test_threadgroup_variables_become_shared_and_constants_compile_time(source):
    program = unit(source).program
    spec = specialisations(source)[1]
    text = cuda_source(source, spec).text
    assert text.count("__shared__") == len(program.threadgroup_variables)
    for name, value in spec:
        assert f"static constexpr bool {name} = {'true' if value else 'false'};" in text
    for name in program.constants:
        if name not in dict(spec):
            assert re.search(rf"static constexpr \w+ {name} = \w+\(\);", cuda_source(source, ()).text)


@pytest.mark.parametrize("source", SOURCES)
def test_kernel_lines_stay_where_the_metal_file_has_them(source):
    u = unit(source)
    text = cuda_source(source, ()).text
    body = text.split('\n#line 1 "<mpskernels cuda entries>"')[0]
    assert body.count("\n") == u.text.count("\n") + 1  # the shim #include is the one added line


@pytest.mark.parametrize("source", SOURCES)
def test_entry_shapes_follow_the_kernel_parameters(source):
    program = unit(source).program
    cuda = cuda_source(source, ())
    for e in program.entries:
        entry = cuda.entries[e.host_name]
        buffers = [p for p in e.kernel.params if p.role == "buffer"]
        assert entry.buffer_slots == (max(p.index for p in buffers) + 1 if buffers else 0)
        scalar_refs = {p.index for p in buffers if "&" in p.type_text.split() and "constant" in p.type_text.split()}
        assert set(entry.inline_slots) == scalar_refs
        assert entry.max_threads == (e.kernel.max_threads or 1024)


SAMPLE = """
#include <metal_stdlib>
using namespace metal;
constant float scale_constant [[function_constant(1)]];
constant uint rows [[function_constant(2)]];
namespace ns {
template <typename T>
kernel void scaled(device T* out [[buffer(0)]], constant float4& bias [[buffer(2)]],
                   threadgroup float* scratch [[threadgroup(1)]], uint3 pos [[thread_position_in_grid]]) {
  threadgroup half tile[32], other[8];
  out[pos.x] = T(float(out[pos.x]) * scale_constant + bias.x + 1.5h);
}
template [[host_name("scaled_half")]] kernel void scaled<half>(device half*, constant float4&, threadgroup float*,
                                                               uint3);
}
"""


def test_a_sample_with_every_role_translates_as_designed():
    u = read_source(SAMPLE, "sample.metal")
    cuda = to_cuda(u.text, u.program, Specialization.of({"scale_constant": 0.5, "rows": 7}))
    entry = cuda.entries["scaled_half"]
    assert (entry.buffer_slots, entry.threadgroup_slots, entry.inline_slots) == (3, 2, (2,))
    text = cuda.text
    assert "static constexpr float scale_constant = 0x1.0000000000000p-1f;" in text
    assert "static constexpr mtl_uint rows = mtl_uint(7ULL);" in text
    assert "__shared__ mtl_half tile[32], other[8];" in text
    assert "mtl_half(1.5f)" in text
    assert "namespace ns {\n// scaled_half" in text  # the entry stands in the instantiation's namespace
    assert "::mtlcuda::bind_threadgroup<::mtlcuda::param_t<F, 2>>(t1)" in text
    assert "::mtlcuda::bind_buffer<::mtlcuda::param_t<F, 1>>(w2, (inline_mask >> 2) & 1u)" in text
    assert "::mtlcuda::bind_builtin<::mtlcuda::param_t<F, 3>>(::mtlcuda::kThreadPositionInGrid, g)" in text
    assert "scaled<mtl_half>(" in text


def test_unknown_function_constants_are_rejected():
    u = read_source(SAMPLE, "sample.metal")
    with pytest.raises(ValueError, match="unknown function constant"):
        to_cuda(u.text, u.program, Specialization.of({"nope": 1}))
