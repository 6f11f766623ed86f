"""Conformance: kernel declaration styles of real Metal libraries (explicit instantiation, host names, implicit
buffer indices, namespaces) and function constants."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mpskernels.emulator import DispatchError


@pytest.fixture(scope="module")
def lib(msl):
    return msl("instantiate.metal")


@pytest.fixture(scope="module")
def fc_lib(msl):
    return msl("function_constants.metal")


def test_host_names_of_every_style(lib):
    """Macro + stringised type + adjacent literals, typedef'd decltype, full signature, namespace and plain kernels."""
    assert set(lib.kernels) == {"scale_add_float", "scale_add_half", "scale_add_bfloat", "sum3_float", "sum2_half",
                                "implicit_indices", "mixed_indices", "doubled_float", "plain_kernel",
                                "language_features_half", "language_features_int"}
    assert lib.kernels["sum2_half"].function == "sum_n"


@pytest.mark.parametrize("name,dtype", [("float", torch.float32), ("half", torch.float16), ("bfloat", torch.bfloat16)])
def test_macro_instantiated_template(lib, name, dtype):
    """scale_add<T> instantiated through INSTANTIATE(...) runs with T's element type and a float scalar argument."""
    x = torch.randn(37).to(dtype)
    out = torch.full_like(x, float("nan"))
    lib.dispatch(f"scale_add_{name}", x, out, 0.5, threads=37, group_size=16)
    want = (x.float() * 0.5 + 1).to(dtype)
    assert torch.equal(out, want)


def test_wrong_dtype_is_a_dispatch_error(lib):
    """Binding a float16 tensor to the float instantiation is refused."""
    with pytest.raises(DispatchError, match="float"):
        lib.scale_add_float(torch.zeros(4, dtype=torch.float16), torch.zeros(4), 1.0, threads=4, group_size=4)


def test_typedef_decltype_and_full_signature_styles(lib):
    """sum_n<float, 3> (typedef'd decltype) and sum_n<half, 2> (full signature) both run with their template args."""
    x3 = torch.arange(30, dtype=torch.float32)
    out = torch.full((10,), float("nan"))
    lib.sum3_float(x3, out, threads=10, group_size=4)
    torch.testing.assert_close(out, x3.view(10, 3).sum(1))
    x2 = torch.arange(20).to(torch.float16)
    out2 = torch.full((10,), float("nan"))
    lib.sum2_half(x2, out2, threads=10, group_size=4)
    torch.testing.assert_close(out2, x2.float().view(10, 2).sum(1))


def test_implicit_buffer_indices(lib):
    """Parameters without [[buffer(n)]] take the lowest free index in declaration order."""
    roles = {p.name: (p.role, p.index) for p in lib.kernels["implicit_indices"].params if p.role == "buffer"}
    assert roles == {"x": ("buffer", 0), "out": ("buffer", 1), "factor": ("buffer", 2)}
    x = torch.randn(9)
    out = torch.full_like(x, float("nan"))
    lib.implicit_indices(x, out, 3.0, threads=9, group_size=9)
    torch.testing.assert_close(out, 3 * x)


def test_mixed_explicit_and_implicit_indices(lib):
    """With out at [[buffer(0)]], the unannotated a and b become buffers 1 and 2."""
    roles = {p.name: p.index for p in lib.kernels["mixed_indices"].params if p.role == "buffer"}
    assert roles == {"a": 1, "out": 0, "b": 2}
    a, b = torch.randn(5), torch.randn(5)
    out = torch.full_like(a, float("nan"))
    lib.mixed_indices(out, a, b, threads=5, group_size=5)
    torch.testing.assert_close(out, a - b)


def test_namespaced_template_and_plain_kernel(lib):
    """A kernel template inside namespaces calls a namespaced helper; a plain kernel is found by its name."""
    x = torch.randn(6)
    out = torch.full_like(x, float("nan"))
    lib.doubled_float(x, out, threads=6, group_size=6)
    torch.testing.assert_close(out, 2 * x)
    iout = torch.zeros(4, dtype=torch.int32)
    lib.plain_kernel(iout, threads=4, group_size=2)
    assert iout.tolist() == [0, 7, 14, 21]


def test_function_constants_are_declared(fc_lib):
    """Every [[function_constant(k)]] is listed with its index; affine_* host names come from the macro."""
    consts = {name: c.index for name, c in fc_lib.function_constants.items()}
    assert consts == {"has_bias": 0, "scale": 1, "offset": 2, "repeats": 3}
    assert set(fc_lib.kernels) == {"affine_float32", "affine_float16"}
    bias = next(p for p in fc_lib.kernels["affine_float32"].params if p.name == "bias")
    assert (bias.role, bias.index, bias.condition) == ("buffer", 1, "has_bias")


@pytest.mark.parametrize("dtype,name", [(torch.float32, "float32"), (torch.float16, "float16")])
def test_function_constants_with_bias_and_offset(fc_lib, dtype, name):
    """has_bias=true binds buffer(1); a defined offset makes is_function_constant_defined true and is used."""
    x = torch.randn(50).to(dtype)
    bias = torch.randn(50).to(dtype)
    out = torch.full_like(x, float("nan"))
    fc_lib.dispatch(f"affine_{name}", x, bias, out, threads=50, group_size=32,
                    constants={"has_bias": True, "scale": 2.5, "offset": -3, "repeats": 2})
    want = (x.double() * 2.5 + bias.double() - 3 + 100 + 2).to(dtype)
    torch.testing.assert_close(out, want, rtol=1e-6 if dtype == torch.float32 else 1e-3, atol=1e-5)


def test_function_constants_without_bias_and_undefined_offset(fc_lib):
    """has_bias=false leaves buffer(1) unbound; an undefined offset takes its default; constants given by index."""
    x = torch.randn(50)
    out = torch.full_like(x, float("nan"))
    fc_lib.affine_float32(x, None, out, threads=50, group_size=32, constants={0: False, 1: 0.5, 3: 0})
    torch.testing.assert_close(out, x * 0.5, rtol=0, atol=0)


def test_missing_function_constant_is_a_dispatch_error(fc_lib):
    """A kernel that uses a function constant cannot run until its value is given."""
    x = torch.randn(4)
    with pytest.raises(DispatchError, match="scale"):
        fc_lib.affine_float32(x, None, torch.zeros(4), threads=4, group_size=4, constants={"has_bias": False,
                                                                                          "repeats": 0})


@pytest.mark.parametrize("name,limits", [("half", (65504.0, -65504.0)), ("int", (2**31 - 1, -(2**31)))])
def test_language_features(lib, name, limits):
    """constant tables, MLX-style `static const constant` members, address-space helpers, [[maybe_unused]]."""
    x = torch.arange(1, 5, dtype=torch.float32)
    out = torch.full((5, 6), float("nan"))
    lib.dispatch(f"language_features_{name}", x, out, threads=5, group_size=5)
    g = np.arange(5)
    want = np.stack([np.full(5, 10.0), np.array([0.5, 1.5, 2.5, 3.5])[g % 4], np.array([2, 4])[g % 2],
                     np.full(5, float(np.float32(limits[0]))), np.full(5, float(np.float32(limits[1]))),
                     np.full(5, 42.5)], 1)
    np.testing.assert_array_equal(out.numpy(), want.astype(np.float32))
