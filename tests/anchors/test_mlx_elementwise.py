"""MLX's unary and binary kernels and the eager chains built from them, on the emulator against PyTorch and
float64: one element per thread below 2^16 elements, several per thread (with a tail) from 2^16, and the
General (broadcast) kernels."""

import pytest
import torch
import torch.nn.functional as F

from .mlx_check import check, dtypes, randn, run

SMALL, LARGE = 1000, (1 << 16) + 3  # "v" and "vn" (the +3 leaves a tail for every work-per-thread)
UNARY = {"mlx.sigmoid": torch.sigmoid, "mlx.erf": torch.erf, "mlx.exp": torch.exp}


@dtypes
@pytest.mark.parametrize("size", [SMALL, LARGE])
@pytest.mark.parametrize("op", sorted(UNARY))
def test_unary(op, size, dtype):
    x = randn(size, seed=size, dtype=dtype, scale=2)
    out, kernels = run(op, x)
    assert kernels[0].startswith("vn_" if size == LARGE else "v_")
    check(out, UNARY[op](x.double()), UNARY[op](x), op)


BINARY = {"mlx.add": torch.add, "mlx.subtract": torch.sub, "mlx.multiply": torch.mul, "mlx.divide": torch.div}


@dtypes
@pytest.mark.parametrize("size", [SMALL, LARGE])
@pytest.mark.parametrize("op", sorted(BINARY))
def test_binary_vector_vector(op, size, dtype):
    a = randn(size, seed=1, dtype=dtype)
    b = randn(size, seed=2, dtype=dtype) + (3 if op == "mlx.divide" else 0)
    out, kernels = run(op, a, b)
    assert kernels[0].startswith("vvn_" if size == LARGE else "vv_")
    check(out, BINARY[op](a.double(), b.double()), BINARY[op](a, b), op)


@dtypes
@pytest.mark.parametrize("size", [SMALL, LARGE])
@pytest.mark.parametrize("scalar_first", [True, False])
def test_binary_scalar_vector(scalar_first, size, dtype):
    v, s = randn(size, seed=3, dtype=dtype), torch.tensor([1.5], dtype=dtype)
    a, b = (s, v) if scalar_first else (v, s)
    out, kernels = run("mlx.multiply", a, b)
    assert kernels[0].startswith(("sv" if scalar_first else "vs") + ("n_" if size == LARGE else "_"))
    check(out, a.double() * b.double(), a * b, "multiply")


@dtypes
@pytest.mark.parametrize("a_shape, b_shape, kernel", [
    ((7, 33), (33,), "g2_"),            # a Linear's bias
    ((2, 3, 33), (3, 1), "g3_"),        # three dimensions that do not collapse
    ((40,), (1,), "vs_"),               # a one-element operand is a scalar, not a broadcast
])
def test_binary_general(a_shape, b_shape, kernel, dtype):
    a, b = randn(*a_shape, seed=4, dtype=dtype), randn(*b_shape, seed=5, dtype=dtype)
    out, kernels = run("mlx.add", a, b)
    assert kernels[0].startswith(kernel)
    check(out, a.double() + b.double(), a + b, "add")


def test_binary_general_strided_operand():
    a = randn(5, 9, seed=6)[:, ::2]  # a column-strided view: General, one collapsed dimension each way
    b = randn(5, 5, seed=7)
    out, kernels = run("mlx.add", a, b)
    assert kernels[0].startswith("g2_")
    check(out, a.double() + b.double(), a + b, "add")


@dtypes
@pytest.mark.parametrize("size", [SMALL, LARGE])
def test_silu_chain(size, dtype):
    x = randn(size, seed=8, dtype=dtype, scale=3)
    out, kernels = run("mlx.silu_chain", x)
    assert [k.split("_")[0] for k in kernels] == (["vn", "vvn"] if size == LARGE else ["v", "vv"])
    check(out, F.silu(x.double()), F.silu(x), "silu chain")


@dtypes
def test_gelu_chain(dtype):
    x = randn(3, 333, seed=9, dtype=dtype, scale=3)
    out, kernels = run("mlx.gelu_chain", x)
    assert [k.split("_")[1][:3] for k in kernels] == ["Div", "Erf", "Add", "Mul", "Div"]
    check(out, F.gelu(x.double()), F.gelu(x), "gelu chain")


@dtypes
def test_swiglu_chain(dtype):
    a, b = randn(4, 100, seed=10, dtype=dtype, scale=3), randn(4, 100, seed=11, dtype=dtype)
    out, _ = run("mlx.swiglu_chain", a, b)
    check(out, F.silu(a.double()) * b.double(), F.silu(a) * b, "swiglu chain")


@dtypes
@pytest.mark.parametrize("act", ["none", "silu", "gelu"])
def test_bias_act_chain(act, dtype):
    x, bias = randn(2, 5, 48, seed=12, dtype=dtype, scale=2), randn(48, seed=13, dtype=dtype)
    fn = {"none": lambda t: t, "silu": F.silu, "gelu": F.gelu}[act]
    out, kernels = run("mlx.bias_act_chain", x, bias, act=act)
    assert kernels[0].startswith("g2_Add")
    check(out, fn(x.double() + bias.double()), fn(x + bias), f"bias_act {act}")

