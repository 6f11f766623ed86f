"""Conformance: compile errors and MSL language rules are reported against the .metal file and line."""

from __future__ import annotations

import textwrap

import pytest
import torch

from mpskernels.emulator import MSLCompileError, compile_source

HEADER = "#include <metal_stdlib>\nusing namespace metal;\n"


def source(body: str) -> str:
    """A .metal source whose body starts on line 3."""
    return HEADER + textwrap.dedent(body).lstrip("\n")


def test_typo_reports_metal_line():
    """A misspelt identifier on line 7 gives an MSLCompileError naming typo.metal:7."""
    src = source("""
        kernel void k(device float* out [[buffer(0)]],
                      uint gid [[thread_position_in_grid]]) {
          float a = 1.0f;
          float b = 2.0f;
          out[gid] = a + bb;
        }
        """)
    assert src.splitlines()[6].strip() == "out[gid] = a + bb;"
    with pytest.raises(MSLCompileError) as info:
        compile_source(src, name="typo.metal")
    assert "typo.metal:7" in str(info.value)
    assert all(d.file == "typo.metal" for d in info.value.diagnostics)


def test_implicit_vector_narrowing_is_an_error():
    """MSL has no implicit float4 -> float2 conversion: compiling it fails at the assignment's line."""
    src = source("""
        kernel void k(device float* out [[buffer(0)]],
                      uint gid [[thread_position_in_grid]]) {
          float4 v = float4(1.0f);
          float2 w = v;
          out[gid] = w.x;
        }
        """)
    with pytest.raises(MSLCompileError) as info:
        compile_source(src, name="convert.metal")
    assert "convert.metal:6" in str(info.value)


def test_error_inside_the_shim_is_reported_at_the_call():
    """simd_sum of a struct fails inside the emulator's headers; the diagnostic names the kernel's calling line."""
    src = source("""
        struct S { float a; };
        kernel void k(device float* out [[buffer(0)]]) {
          S s{1.0f};
          S t = simd_sum(s);
          out[0] = t.a;
        }
        """)
    with pytest.raises(MSLCompileError) as info:
        compile_source(src, name="shim_err.metal")
    assert [d.file for d in info.value.diagnostics] == ["shim_err.metal"]
    assert info.value.diagnostics[0].line == 6  # `S t = simd_sum(s);`


RULES = [
    ("double", "  double d = 1.0;\n", "double"),
    ("try", "  try { out[0] = 1.0f; } catch (...) {}\n", "exception"),
    ("throw", "  if (gid > 100) throw 1;\n", "exception"),
    ("new", "  float* p = new float[4];\n  out[0] = p[0];\n", "new"),
    ("delete", "  delete out;\n", "delete"),
    ("goto", "  goto end;\n  end: out[0] = 1.0f;\n", "goto"),
]


@pytest.mark.parametrize("keyword,statement,message", RULES, ids=[r[0] for r in RULES])
def test_forbidden_cxx_features(keyword, statement, message):
    """C++ features MSL forbids (double, exceptions, new/delete, goto) fail with file:line of the offending line."""
    src = HEADER + (
        "kernel void k(device float* out [[buffer(0)]], uint gid [[thread_position_in_grid]]) {\n"
        "  out[gid] = 0.0f;\n" + statement + "}\n"
    )
    with pytest.raises(MSLCompileError) as info:
        compile_source(src, name="rules.metal")
    text = str(info.value)
    assert "rules.metal:5" in text, text
    assert message in text.lower()


def test_virtual_function_rejected():
    """A struct with a virtual member function is rejected at its line."""
    src = source("""
        struct Base {
          virtual float f() const { return 1.0f; }
        };
        kernel void k(device float* out [[buffer(0)]]) { out[0] = 1.0f; }
        """)
    with pytest.raises(MSLCompileError, match=r"virtual\.metal:4: .*virtual"):
        compile_source(src, name="virtual.metal")


def test_mutable_program_scope_variable_rejected():
    """A program-scope variable outside the constant address space is rejected at its line."""
    src = source("""
        constant float ok_scale = 2.0f;
        float counter = 0.0f;
        kernel void k(device float* out [[buffer(0)]]) { out[0] = ok_scale * counter; }
        """)
    with pytest.raises(MSLCompileError, match=r"globals\.metal:4: .*constant"):
        compile_source(src, name="globals.metal")


def test_unsuffixed_double_literal_is_float():
    """An unsuffixed floating literal (1.5) is float in MSL, not a forbidden double: it compiles and runs."""
    src = source("""
        kernel void k(device float* out [[buffer(0)]], uint gid [[thread_position_in_grid]]) {
          out[gid] = 1.5 * float(gid) + 0.25;
        }
        """)
    lib = compile_source(src, name="literal.metal")
    out = torch.full((4,), float("nan"))
    lib.k(out, threads=4, group_size=4)
    assert out.tolist() == [0.25, 1.75, 3.25, 4.75]


def test_kernel_parameter_without_role_rejected():
    """A kernel parameter that is neither a buffer, threadgroup pointer nor a builtin is an error at its line."""
    src = source("""
        kernel void k(device float* out [[buffer(0)]],
                      uint gid) {
          out[gid] = 1.0f;
        }
        """)
    with pytest.raises(MSLCompileError, match=r"role\.metal:4: .*gid"):
        compile_source(src, name="role.metal")
