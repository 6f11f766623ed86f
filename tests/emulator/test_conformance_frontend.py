"""Conformance: the front end models what real Metal headers write, and refuses -- at the .metal line -- what it
does not model. Never a silent drop: the scan at the end feeds every statement of our kernels, the conformance
files and PyTorch's Metal headers that mentions an address space or an attribute through the front end on its
own, and checks that each is either modelled or refused."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
import torch

from mpskernels import msl
from mpskernels._paths import metal_dir
from mpskernels.emulator import DispatchError, MSLCompileError
from mpskernels.msl.coverage import CHECKED_SPACES
from mpskernels.msl.lexer import matching
from mpskernels.msl.parse import is_attribute_start
from mpskernels.msl.scopes import CLASS, FUNCTION, INIT, NAMESPACE, scope_kinds, statement_start

MSL_DIR = Path(__file__).parent / "msl"
TORCH_INCLUDE = Path(torch.__file__).parent / "include"
HEADER = "#include <metal_stdlib>\nusing namespace metal;\n"


def line_of(file: str, marker: str) -> int:
    for number, text in enumerate((MSL_DIR / file).read_text().splitlines(), 1):
        if marker in text:
            return number
    raise AssertionError(f"marker {marker} not found")


# ------------------------------------------------------------------------------------------------------------------
# Threadgroup variables with initializers (issue 21 §1)


@pytest.fixture(scope="module")
def tg_init(msl):
    return msl("frontend_threadgroup_init.metal")


@pytest.mark.parametrize("group", [32, 64])
def test_initialized_threadgroup_array_is_shared(tg_init, group):
    """`threadgroup float buf[32] = {0};` is one array per threadgroup: every lane reads lane 0's write."""
    out = torch.full((128,), float("nan"))
    tg_init.initialized_array_is_shared(out, threads=128, group_size=group, order="shuffled", seed=1)
    assert (out == 1).all()


def test_every_initialized_declarator_is_shared(tg_init):
    """`threadgroup int count{0}, slots[4] = {...};` declares two shared variables; the plain one beside it too."""
    out = torch.zeros(64, dtype=torch.int32)
    tg_init.initialized_declarators_are_shared(out, threads=64, group_size=32)
    assert (out == 7 * 100 + 9 * 10 + 5).all()


def test_threadgroup_initializer_is_not_run(tg_init):
    """Metal does not promise to run a threadgroup variable's initializer: the memory starts poisoned (NaN)."""
    out = torch.zeros(16)
    tg_init.initializer_is_not_run(out, threads=16, group_size=8)
    assert out.isnan().all()


def test_initializer_is_recorded_and_dropped_from_the_cpp():
    unit = msl.read_file(MSL_DIR / "frontend_threadgroup_init.metal")
    var = unit.program.threadgroup_variables[0]
    assert var.declarators == (("buf", "[32]"),) and var.initialized == ("buf",)
    assert [t.line for t in unit.program.tokens[var.statement[0] : var.statement[0] + 1]] == [
        line_of("frontend_threadgroup_init.metal", "INIT_DECL")]
    cpp = unit.cpp(msl.Specialization(), "shim.h")
    assert "tg_alloc<float[32]>" in cpp and "= {0}" not in cpp


# ------------------------------------------------------------------------------------------------------------------
# Attribute arguments, host names, instantiation forms, address-space collapses (issue 21 §2)


def test_constant_expressions_in_attribute_arguments(msl):
    lib = msl("frontend_attributes.metal")
    assert {n: c.index for n, c in lib.function_constants.items()} == {"scale_twice": 11, "offset_by": 15,
                                                                        "steel_style": 3}
    out = torch.zeros(4)
    lib.constant_indices(out, None, 1.5, threads=4, group_size=4, constants={"scale_twice": True, "offset_by": 3})
    assert (out == 9).all()


def test_static_constexpr_function_constant(msl):
    """`static constant constexpr const int c [[function_constant(3)]]` is an int function constant."""
    lib = msl("frontend_attributes.metal")
    out = torch.zeros(4, dtype=torch.int32)
    lib.steel_constant(out, threads=4, group_size=4, constants={"steel_style": 42})
    assert (out == 42).all()


def test_template_dependent_max_total_threads(msl):
    """max_total_threads_per_threadgroup(WM * SIMD) is evaluated for each instantiation's template arguments."""
    lib = msl("frontend_attributes.metal")
    assert lib.kernels["limited_2"].max_total_threads_per_threadgroup == 64
    assert lib.kernels["limited_4"].max_total_threads_per_threadgroup == 128
    out = torch.zeros(128)
    lib.limited_4(out, threads=128, group_size=128)
    assert (out == 4).all()
    with pytest.raises(DispatchError, match="64"):
        lib.limited_2(out, threads=128, group_size=128)


def test_host_name_on_a_kernel_definition(msl):
    lib = msl("frontend_attributes.metal")
    assert "renamed_fill" in lib.kernels and "fill_impl" not in lib.kernels
    out = torch.zeros(4)
    lib.renamed_fill(out, threads=4, group_size=4)
    assert (out == 3).all()


def test_instantiation_forms(msl):
    """`kernel void ::ns::f<T>(...)`, template arguments deduced from the parameters, overloaded kernel templates."""
    lib = msl("frontend_instantiation.metal")
    x = torch.arange(4.0)
    out = torch.zeros(4)
    lib.twice_float(out, x, threads=4, group_size=4)
    assert torch.equal(out, 2 * x)
    iout = torch.zeros(4, dtype=torch.int32)
    lib.twice_int(iout, torch.arange(4, dtype=torch.int32), threads=4, group_size=4)
    assert iout.tolist() == [0, 2, 4, 6]
    lib.last_dim_2(out, torch.tensor([3, 5], dtype=torch.int32).view(torch.uint8), threads=4, group_size=4)
    assert (out == 5).all()
    lib.fill_one(out, threads=4, group_size=4)
    assert (out == 1).all()
    lib.fill_seven(out, 0.5, threads=4, group_size=4)
    assert (out == 7.5).all()


def test_address_space_collapses_array_parameters_and_coherent(msl):
    """Constructors, free functions and class specialisations that differ only by address space; an array kernel
    parameter bound like a constant buffer; `coherent(system)`; `static constant constexpr const`."""
    lib = msl("frontend_address_spaces.metal")
    out = torch.zeros(8)
    x = torch.arange(8.0) + 1
    lib.collapse(out, x, torch.tensor([1, 2, 3], dtype=torch.int64), threads=8, group_size=4)
    group_first = torch.tensor([1.0] * 4 + [5.0] * 4)
    assert torch.equal(out, 1000 + 100 * group_first + x + 7 + 1024)


# ------------------------------------------------------------------------------------------------------------------
# What the front end refuses, at the line


REFUSED = [
    ("struct S { threadgroup float x[4]; };", "as a class member"),
    ("threadgroup float shared_x[4];", "program-scope variables"),
    ("kernel void k(device float* o [[buffer(0)]]) { device float x = 1; o[0] = x; }", "'device' applies to"),
    ("kernel void k(device float* o [[buffer(0)]]) { o[0] = is_same_v<device float, float>; }", "not a pointer"),
    ("kernel void k(device float* o [[buffer(0)]]) { threadgroup float a[4], *p = a; o[0] = p[0]; }",
     "separate statements"),
    ("struct Arg { device float* p [[id(0)]]; };", "[[id]]"),
    ("inline float f(float x) [[clang_unknown]];", "[[clang_unknown]]"),
    ('template <typename T> [[host_name("x")]] kernel void k(device T* o [[buffer(0)]]) {}', "[[host_name]]"),
    ("template <int N> [[kernel, max_total_threads_per_threadgroup(N * 32)]] void k(device float* o [[buffer(0)]],"
     " constant int* s [[buffer(1)]]) {}\n"
     'template [[host_name("k1")]] [[kernel]] void k(device float*, constant int*);', "name them"),
    ("kernel void k(device float* o [[buffer(0)]], uint i [[thread_position_in_grid]]) {}\n"
     "constant int fc [[function_constant(UNKNOWN + 1)]];", "UNKNOWN"),
    ("inline float g(device float* p) { return p[0]; }\ninline float g(threadgroup float* p) { return p[1]; }",
     "different bodies"),
    ("kernel void k(device float* o [[buffer(0)]]) { threadgroup_imageblock float x; }", "threadgroup_imageblock"),
]  # fmt: skip


@pytest.mark.parametrize("snippet, message", REFUSED, ids=[m for _, m in REFUSED])
def test_unmodelled_constructs_are_refused_at_their_line(snippet, message):
    with pytest.raises(MSLCompileError) as info:
        msl.read_source(HEADER + snippet, "refused.metal")
    text = str(info.value)
    assert message in text
    lines = {d.line for d in info.value.diagnostics if d.file == "refused.metal"}
    assert lines and lines <= set(range(3, 3 + snippet.count("\n") + 1)), text


# ------------------------------------------------------------------------------------------------------------------
# The fall-through scan


def corpus() -> list[tuple[str, str | None]]:
    """(name, source -- None for a file read as it is) of real Metal code: our kernels, the conformance files, PyTorch's Metal headers (and MLX's
    kernel headers when MPSKERNELS_MLX_INCLUDE names the wheel's include folder)."""
    files = sorted(metal_dir().glob("*.metal")) + sorted(MSL_DIR.glob("*.metal"))
    out = [(str(p), None) for p in files]
    headers = sorted((TORCH_INCLUDE / "ATen/native/mps/kernels").glob("*.h"))
    headers += sorted((TORCH_INCLUDE / "c10/metal").glob("*.h"))
    out += [(str(h), f"#include <metal_stdlib>\n#include <{h.relative_to(TORCH_INCLUDE)}>\n") for h in headers]
    mlx = os.environ.get("MPSKERNELS_MLX_INCLUDE")
    if mlx:
        for h in sorted(Path(mlx, "mlx/backend/metal/kernels").glob("*.h")):
            out.append((str(h), f"#include <metal_stdlib>\n#include <{h.relative_to(mlx)}>\n"))
    return out


def include_dirs() -> list[Path]:
    return [TORCH_INCLUDE] + ([Path(os.environ["MPSKERNELS_MLX_INCLUDE"])]
                              if os.environ.get("MPSKERNELS_MLX_INCLUDE") else [])


def mentions(unit: msl.TranslationUnit) -> list[tuple[str, str]]:
    """(scope kind, statement text) of every statement that mentions an address space or an attribute."""
    tokens = unit.program.tokens
    scopes = scope_kinds(tokens)
    seen, out = set(), []
    for i, t in enumerate(tokens):
        if not (t.text in CHECKED_SPACES or is_attribute_start(tokens, i)) or scopes[i] == INIT:
            continue
        start = statement_start(tokens, i)
        while start > 0 and tokens[start - 1].text in ("(", "[", ","):  # the whole declaration, not one parameter
            start = statement_start(tokens, start - 1)
        end = start
        while end < len(tokens) and tokens[end].text not in (";", "}"):
            if tokens[end].text == "{" and tokens[end - 1].text in (")", "const", *CHECKED_SPACES, "thread"):
                break  # a function body: the statement is the function's head
            end = matching(tokens, end) + 1 if tokens[end].text in ("(", "[", "{") else end + 1
        if start in seen or end >= len(tokens):
            continue
        if tokens[start].text == "template" and tokens[start + 1].text != "<":
            continue  # an explicit instantiation needs its kernel: checked in the whole file only
        seen.add(start)
        text = "".join(x.text + (" " if y is None or y.start > x.end else "")  # `[[` stays one attribute start
                       for x, y in zip(tokens[start : end + 1], [*tokens[start + 1 : end + 1], None]))
        out.append((scopes[i], text + (" }" if tokens[end].text == "{" else "")))
    return out


def standalone(scope: str, statement: str) -> str:
    if scope == FUNCTION:
        return f"kernel void scan_k(device float* scan_out [[buffer(0)]]) {{\n{statement}\n}}\n"
    if scope == CLASS:
        return f"struct ScanS {{\n{statement}\n}};\n"
    return statement + "\n"


def test_every_real_statement_is_modelled_or_refused():
    """Each statement of the corpus that mentions `device`, `constant`, `threadgroup` or an attribute, read on its
    own in its kind of scope, is either refused with a diagnostic at its line, or parsed with every address-space
    keyword given a model -- and a statement-level threadgroup value is a threadgroup variable."""
    forms: dict[str, str] = {}
    for name, source in corpus():
        if source is None:
            unit = msl.read_file(name)
        else:
            unit = msl.read_source(source, name, include_dirs())
        assert_all_modelled(unit)
        for scope, statement in mentions(unit):
            forms.setdefault(f"{scope}|{statement}", scope)
    modelled = refused = 0
    for key, scope in forms.items():
        statement = key.split("|", 1)[1]
        source = HEADER + standalone(scope, statement)
        try:
            unit = msl.read_source(source, "scan.metal")
        except MSLCompileError as e:
            lines = {d.line for d in e.diagnostics if d.file == "scan.metal"}
            assert lines, f"refused without a scan.metal line: {statement!r}\n{e}"
            refused += 1
            continue
        assert_all_modelled(unit)
        modelled += 1
    assert modelled > 300 and refused < modelled // 10, (modelled, refused)


def assert_all_modelled(unit: msl.TranslationUnit) -> None:
    program = unit.program
    tokens = program.tokens
    inside_attributes = {k for a in program.attributes for k in range(a.start, a.end + 1)}
    tg_statements = {v.statement[0] for v in program.threadgroup_variables}
    for i, t in enumerate(tokens):
        if t.text not in CHECKED_SPACES or i in inside_attributes or tokens[i - 1].text in ("::", ".", "->"):
            continue
        assert i in program.address_space_models, f"{t.where}: '{t.text}' has no model"
        if program.address_space_models[i] == "threadgroup variable":
            assert i in tg_statements
        if t.text == "threadgroup" and i in tg_statements:
            assert program.address_space_models[i] == "threadgroup variable"


def test_cuda_translation_keeps_initialized_threadgroup_arrays_shared():
    """The NVIDIA lane makes the same statements `__shared__` and drops their initializers (CUDA allows none on
    shared memory; Metal does not run them); the translation compiles with NVRTC where it is installed."""
    from mpskernels.cuda import nvrtc, nvrtc_options, to_cuda

    unit = msl.read_file(MSL_DIR / "frontend_threadgroup_init.metal")
    cuda = to_cuda(unit.text, unit.program, msl.Specialization())
    shared = [" ".join(line.split()) for line in cuda.text.splitlines() if "__shared__" in line]
    assert shared == ["__shared__ float buf[32] ;", "__shared__ int count, slots[4] ;", "__shared__ int plain;",
                      "__shared__ float zeros[8] ;"]
    if nvrtc.library() is not None:
        nvrtc.compile_to_ptx(cuda.text, nvrtc_options("compute_90"), name="frontend_threadgroup_init.metal")
