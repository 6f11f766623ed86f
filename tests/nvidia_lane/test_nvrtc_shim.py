"""The CUDA shim holds what real Metal headers rely on, checked through NVRTC without a GPU: their own definitions
of names Apple's <metal_stdlib> lacks never collide with the shim's (MLX's bf16_math.h defines the bfloat math in
namespace metal, erf.h a global erf), integer arguments pick the integer overloads, and half arithmetic works in
constant expressions (MLX's complex.h static_asserts on it)."""

import re

import pytest

from mpskernels import msl
from mpskernels.cuda import nvrtc, nvrtc_options, to_cuda
from mpskernels.msl.transform import Specialization

pytestmark = pytest.mark.skipif(nvrtc.library() is None, reason="no NVRTC library (nvidia-cuda-nvrtc-cu12)")


def ptx_of(source: str) -> str:
    unit = msl.read_source(source, "shim_case.metal")
    return nvrtc.compile_to_ptx(to_cuda(unit.text, unit.program, Specialization()).text, nvrtc_options("compute_90"))


def test_user_definitions_of_names_the_stdlib_lacks_are_the_ones_called():
    ptx = ptx_of("""
        #include <metal_stdlib>
        using namespace metal;
        float erf(float a) { return a * 2.0f; }
        float expm1f(float a) { return a + 1.0f; }
        namespace metal {
        inline bfloat exp(bfloat x) { return bfloat(3.0f); }
        inline bfloat max(bfloat a, bfloat b) { return a; }
        }
        kernel void k(device float* o [[buffer(0)]], device bfloat* b [[buffer(1)]],
                      uint i [[thread_position_in_grid]]) {
          o[i] = erf(o[i]) + expm1f(o[i]);
          b[i] = exp(b[i]) + metal::max(b[i], b[i + 1]) + float(metal::exp(half(b[i])));
        }
    """)
    assert re.search(r"fma\.rn\.f32\s+%f\d+, %f\d+, 0f40000000", ptx)  # 2 * x + (x + 1): the kernel's own erf


def test_integer_arguments_take_the_integer_overloads():
    ptx_of("""
        #include <metal_stdlib>
        kernel void k(device int* o [[buffer(0)]], device half* h [[buffer(1)]], uint i [[thread_position_in_grid]]) {
          int a = o[i];
          uint u = uint(i);
          o[0] = metal::abs(a) + metal::max(a, 3) + int(metal::min(u, 4u)) + metal::clamp(a, 0, 5) +
                 metal::max3(a, 1, 2);
          int4 v = int4(a);
          o[1] = metal::abs(v).x + metal::max(v, int4(2)).y;
          h[0] = metal::max(h[1], h[2]) + metal::abs(h[3]) + metal::clamp(h[4], half(0), half(1));
          o[2] = int(metal::precise::log(10) * 100.0f);
        }
    """)


def test_half_arithmetic_in_constant_expressions():
    ptx_of("""
        #include <metal_stdlib>
        using namespace metal;
        static_assert(half(1.5f) * half(2.0f) == half(3.0f), "half product");
        static_assert(float(half(0.1f)) == 0.0999755859375f, "rounded to nearest even");
        static_assert(float(half(6.0e-8f)) == 5.9604644775390625e-8f, "subnormal");
        static_assert(float(bfloat(1.00390625f)) == 1.0f, "bfloat ties to even");
        static_assert(numeric_limits<half>::max() == half(65504.0f), "limits");
        constant constexpr half scale = half(0.5f) + half(0.25f);
        kernel void k(device half* o [[buffer(0)]], uint i [[thread_position_in_grid]]) { o[i] = o[i] * scale; }
    """)


@pytest.mark.parametrize("elem", ["half", "bfloat"])
def test_a_converted_vector_operand_is_loaded_whole(elem):
    # Metal loads float4(h[i]) for a device half4* h with one 8-byte access. The shim's converting constructor read
    # the operand's components one by one, so the lane issued four 2-byte loads: no wrong value, but a kernel (ours
    # or an anchor's) that converts vectors straight from memory moved its bytes in quarter-size accesses.
    ptx = ptx_of(f"""
        #include <metal_stdlib>
        using namespace metal;
        kernel void k(device float4* o [[buffer(0)]], const device {elem}4* h [[buffer(1)]],
                      uint i [[thread_position_in_grid]]) {{
          o[i] = float4(h[i]);
        }}
    """)
    assert re.search(r"ld\.global(\.nc)?\.v4\.u16", ptx)
    assert not re.search(r"ld\.global(\.nc)?\.u16", ptx)


def test_a_vector_operand_of_arithmetic_is_loaded_whole():
    # Metal reads a device float4 operand of `m * a[i] + a[j]` (and of `o[i] += a[i]`) as whole 16-byte accesses.
    # The shim's operators took vectors by reference and read them lane by lane: four 4-byte loads each (the
    # decode merge's o_row[b] on the lane), where by value the operand is copied whole.
    ptx = ptx_of("""
        #include <metal_stdlib>
        using namespace metal;
        kernel void k(device float4* o [[buffer(0)]], const device float4* a [[buffer(1)]],
                      const device float* m [[buffer(2)]], uint i [[thread_position_in_grid]]) {
          o[i] = m[i] * a[i] + a[i + 64];
          o[i + 64] += a[i + 128];
        }
    """)
    assert len(re.findall(r"ld\.global(\.nc)?\.v4\.f32", ptx)) == 4  # a[i], a[i + 64], a[i + 128], o[i + 64]
    assert len(re.findall(r"ld\.global(\.nc)?\.f32", ptx)) == 1  # m[i] alone
    assert len(re.findall(r"st\.global\.v4\.[fu]32", ptx)) == 2  # each result stored as one 16-byte access
    assert not re.search(r"st\.global\.[fu]32", ptx)
