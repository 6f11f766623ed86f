"""The MSL front end on its own: tokens, kernels, parameter roles, instantiations, constants, rules.

These tests only preprocess and parse (no C++ compile), so they run in milliseconds each.
"""

import re

import pytest

from mpskernels import msl
from mpskernels.msl import MSLCompileError
from mpskernels.msl.lexer import tokenize
from mpskernels.msl.transform import Specialization


def read(source: str, name: str = "t.metal") -> msl.TranslationUnit:
    return msl.read_source("#include <metal_stdlib>\nusing namespace metal;\n" + source, name)


def roles(unit: msl.TranslationUnit, host_name: str) -> list[tuple]:
    entry = next(e for e in unit.program.entries if e.host_name == host_name)
    return [(p.name, p.role, p.builtin if p.role == "builtin" else p.index) for p in entry.kernel.params]


def test_tokens_carry_metal_file_and_line_from_line_markers():
    tokens = tokenize('# 1 "a.metal"\nint x;\n# 7 "b.metal"\nfloat y;\n')
    assert [(t.text, t.file, t.line) for t in tokens] == [
        ("int", "a.metal", 1), ("x", "a.metal", 1), (";", "a.metal", 1),
        ("float", "b.metal", 7), ("y", "b.metal", 7), (";", "b.metal", 7),
    ]  # fmt: skip


def test_comments_and_strings_do_not_look_like_kernels():
    unit = read(
        """
        // kernel void fake_a(device float* x [[buffer(0)]]) {}
        /* kernel void fake_b(device float* x [[buffer(0)]]) {} */
        constant char note[] = "kernel void fake_c(device float* x) {}";
        kernel void real(device float* x [[buffer(0)]], uint i [[thread_position_in_grid]]) { x[i] = 1.0; }
        """
    )
    assert [e.host_name for e in unit.program.entries] == ["real"]


def test_roles_come_from_attributes_builtins_and_implicit_indices():
    unit = read(
        """
        kernel void k(device float* a, constant uint& n [[buffer(3)]], device half* b,
                      threadgroup float* scratch, uint3 gid [[thread_position_in_grid]],
                      ushort lane [[thread_index_in_simdgroup]]) {}
        """
    )
    # Implicit indices take the lowest free slot in declaration order, after explicit ones are reserved.
    assert roles(unit, "k") == [
        ("a", "buffer", 0), ("n", "buffer", 3), ("b", "buffer", 1), ("scratch", "threadgroup", 0),
        ("gid", "builtin", "thread_position_in_grid"), ("lane", "builtin", "thread_index_in_simdgroup"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    "instantiation",
    [
        'template [[host_name("scale_" "float")]] [[kernel]] decltype(scale<float>) scale<float>;',
        'typedef decltype(scale<float>) scale_t;\ntemplate [[host_name("scale_float")]] kernel scale_t scale<float>;',
        'template [[host_name("scale_float")]] [[kernel]] void scale<float>(const device float*, device float*, '
        "uint);",
        '#define INST(T) template [[host_name("scale_" #T)]] [[kernel]] decltype(scale<T>) scale<T>;\nINST(float)',
    ],
    ids=["decltype", "typedef", "full-signature", "macro"],
)
def test_explicit_instantiation_styles(instantiation):
    unit = read(
        """
        template <typename T>
        [[kernel]] void scale(const device T* x [[buffer(0)]], device T* y [[buffer(1)]],
                              uint i [[thread_position_in_grid]]) { y[i] = x[i] * T(2); }
        """
        + instantiation
    )
    assert [e.host_name for e in unit.program.entries] == ["scale_float"]
    assert unit.program.entries[0].cpp_function == "scale<float>"
    assert roles(unit, "scale_float")[0] == ("x", "buffer", 0)


def test_kernel_attribute_list_and_namespaces():
    unit = read(
        """
        namespace ops {
        [[kernel, max_total_threads_per_threadgroup(256)]]
        void fill(device float* y [[buffer(0)]], uint i [[thread_position_in_grid]]) { y[i] = 0; }
        }
        """
    )
    kernel = unit.program.kernels["fill"]
    assert kernel.max_threads == 256
    assert kernel.qualified_name == "ops::fill"


def test_function_constants_and_conditional_buffers():
    unit = read(
        """
        constant bool has_bias [[function_constant(0)]];
        constant int mode [[function_constant(3)]];
        constant bool use_mode = is_function_constant_defined(mode);
        kernel void k(device float* y [[buffer(0)]], device const float* bias [[buffer(1), function_constant(has_bias)]],
                      uint i [[thread_position_in_grid]]) { if (has_bias) y[i] += bias[i]; }
        """
    )
    consts = unit.program.constants
    assert (consts["has_bias"].index, consts["mode"].index) == (0, 3)
    assert [p.condition for p in unit.program.kernels["k"].params] == [None, "has_bias", None]
    cpp = unit.cpp(Specialization.of({"has_bias": True}), "shim.h")
    assert "static constexpr bool has_bias = true;" in cpp
    assert "const bool use_mode = false;" in cpp  # `mode` was not given: undefined


def test_threadgroup_variables_become_group_shared_storage():
    unit = read(
        """
        kernel void k(device float* y [[buffer(0)]], uint i [[thread_position_in_grid]]) {
          threadgroup float tile[16][17], row[32];
          threadgroup atomic_uint counter;
          threadgroup float* p = &tile[0][0];
          y[i] = p[0];
        }
        """
    )
    decls = [(v.type_text, v.declarators) for v in unit.program.threadgroup_variables]
    assert decls == [("float", (("tile", "[16][17]"), ("row", "[32]"))), ("atomic_uint", (("counter", ""),))]


def test_edits_keep_every_line_in_place():
    source = 'kernel void k(device float* y [[buffer(0)]],\n  uint i [[thread_position_in_grid]]) {\n  y[i] = 1.5;\n}\n'
    unit = read(source)
    cpp = unit.cpp(Specialization(), "shim.h")
    body = cpp.split("#line 1")[0]
    # Read the C++ back through its line markers: the literal still sits on t.metal line 5 (2 prelude lines + 3).
    literal = next(t for t in tokenize(body) if t.text == "1.5f")
    assert (literal.file, literal.line) == ("t.metal", 5)
    param = next(t for t in tokenize(body) if t.text == "i" and t.file == "t.metal")
    assert param.line == 4


@pytest.mark.parametrize(
    "snippet, message",
    [
        ("kernel void k(device float* y [[buffer(0)]]) { double d = 1; y[0] = d; }", "'double'"),
        ("kernel void k(device float* y [[buffer(0)]]) { try { y[0] = 1; } catch (...) {} }", "exceptions"),
        ("kernel void k(device float* y [[buffer(0)]]) { float* p = new float[2]; y[0] = p[0]; }", "new/delete"),
        ("struct A { virtual float f(); };", "virtual"),
        ("float counter = 0;", "constant address space"),
        ("kernel void k(device float* y [[buffer(0)]], texture2d<float> t [[texture(0)]]) {}", "[[texture]]"),
        ("kernel void k(device float* y [[buffer(0)]], float s) {}", "no role"),
        ("kernel void k(device float* y [[buffer(0)]], device float* z [[buffer(0)]]) {}", "used by both"),
        ("kernel float k(device float* y [[buffer(0)]]) { return 0; }", "must return void"),
    ],
)
def test_msl_rules_are_enforced_with_file_and_line(snippet, message):
    with pytest.raises(MSLCompileError) as e:
        read("\n" + snippet, "rules.metal")
    assert message in str(e.value)
    assert "rules.metal:4" in str(e.value)


def test_missing_include_names_the_metal_file():
    with pytest.raises(MSLCompileError, match="inc.metal:1"):
        msl.read_source('#include "no_such_header.h"\n', "inc.metal")


def test_sync_classification_follows_helper_calls():
    unit = read(
        """
        inline float row_total(float v) { return simd_sum(v); }
        inline float twice(float v) { return row_total(v) * 2; }
        kernel void plain(device float* y [[buffer(0)]], uint i [[thread_position_in_grid]]) { y[i] *= 2; }
        kernel void nested(device float* y [[buffer(0)]], uint i [[thread_position_in_grid]]) { y[i] = twice(y[i]); }
        """
    )
    kernels = unit.program.kernels
    assert kernels["plain"].uses_sync is False
    assert kernels["nested"].uses_sync is True


def test_literals_become_float_and_half():
    unit = read("kernel void k(device half* y [[buffer(0)]]) { y[0] = 0.5h + half(1e-3) + half(2.); }")
    cpp = unit.cpp(Specialization(), "shim.h")
    assert "half(0.5f) + half(1e-3f) + half(2.f)" in cpp


def test_member_functions_overloaded_only_by_address_space_are_merged():
    unit = read(
        """
        struct Acc {
          float v;
          float get() const thread { return v; }
          float get() const device { return v; }
          float get() const threadgroup { return v; }
          void add(float x) thread { v += x; }
        };
        kernel void k(device float* y [[buffer(0)]]) { Acc a{1}; a.add(2); y[0] = a.get(); }
        """
    )
    assert len(unit.program.duplicate_members) == 2
    cpp = unit.cpp(Specialization(), "shim.h").split("#line 1")[0]
    assert cpp.count("float get() const") == 1
    assert "void add(float x)" in cpp


def test_constant_qualified_constructors_and_conversions_to_template_types_are_merged():
    # MLX's complex.h: a constructor qualified `constant` (which must not become a `const` constructor) and
    # conversion operators to vec<T, 2> (a template-id after `operator`) overloaded by address space.
    unit = read(
        """
        template <typename T> struct C {
          T re;
          constexpr C(T x) thread : re(x) {}
          constexpr C(T x) constant : re(x) {}
          constexpr operator vec<T, 2>() const thread { return vec<T, 2>(re, re); }
          constexpr operator vec<T, 2>() const device { return vec<T, 2>(re, re); }
          constexpr operator vec<T, 2>() const constant { return vec<T, 2>(re, re); }
        };
        kernel void k(device float2* y [[buffer(0)]]) { C<float> c(1.0f); y[0] = float2(c); }
        """
    )
    assert len(unit.program.duplicate_members) == 3
    cpp = unit.cpp(Specialization(), "shim.h").split("#line 1")[0]
    assert cpp.count("constexpr C(T x)") == 1 and "C(T x) const" not in cpp
    assert cpp.count("operator vec<T, 2>() const") == 1


@pytest.mark.parametrize(
    "expr, env, value",
    [
        ("100 + 1", {}, 101),
        ("BM * BN * 32", {"BM": 2, "BN": 4}, 256),
        ("(7 - 10) / 2", {}, -1),  # C++ truncates toward zero
        ("-7 % 3", {}, -1),
        ("1 << 4 | 1", {}, 17),
        ("N > 4 ? N : 4", {"N": 8}, 8),
        ("0x10 + 010 + 1'000", {}, 16 + 8 + 1000),
    ],
)
def test_attribute_arguments_fold_as_cpp_integer_expressions(expr, env, value):
    from mpskernels.msl.evaluate import evaluate

    assert evaluate(tokenize(expr), env) == value


@pytest.mark.parametrize("expr", ["sizeof(T)", "N + 1", "f(2)", "1 +"])
def test_attribute_arguments_the_front_end_cannot_fold(expr):
    from mpskernels.msl.evaluate import NotConstant, evaluate

    with pytest.raises(NotConstant):
        evaluate(tokenize(expr), {})


def test_globally_qualified_and_deduced_instantiations():
    unit = read(
        """
        namespace a { namespace b {
        template <typename T> kernel void f(device T* y [[buffer(0)]], uint i [[thread_position_in_grid]]) {}
        } }
        template [[host_name("f_float")]] kernel void ::a::b::f<float>(device float* y, uint i);
        template [[host_name("f_half")]] [[kernel]] void a::b::f(device half* y [[buffer(0)]], uint i);
        """
    )
    by_host = {e.host_name: e for e in unit.program.entries}
    assert by_host["f_float"].address == "&::a::b::f<float>"
    assert by_host["f_half"].address == "static_cast<void(*)(half * y , uint i)>(&a::b::f)"


def test_array_parameters_are_buffers():
    unit = read("kernel void k(device float* y [[buffer(0)]], constant int64_t strides[3] [[buffer(1)]]) {}")
    assert roles(unit, "k") == [("y", "buffer", 0), ("strides", "buffer", 1)]
    assert unit.program.kernels["k"].params[1].type_text == "constant int64_t *"


def test_static_constant_constexpr_const_keeps_one_const():
    unit = read("struct L { static constant constexpr const float big = 2.0f; };\n"
                "kernel void k(device float* y [[buffer(0)]]) { y[0] = L::big; }")
    cpp = unit.cpp(Specialization(), "shim.h").split("#line 1")[0]
    assert re.search(r"static\s+constexpr\s+const float big", cpp)
