"""Conformance: metal:: math functions (plain, precise::, fast::) for float, half and float4, against numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def lib(msl):
    return msl("math.metal")


def inputs(n, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-5, 5, n)
    ties = [0.5, -0.5, 1.5, -2.5, 2.5, 0.0, -0.0, 3.0]  # rounding ties and zeros
    x[: min(n, 8)] = ties[: min(n, 8)]
    p = rng.uniform(0.05, 20, n)
    y = rng.uniform(0.5, 3, n) * rng.choice([-1, 1], n)
    return x.astype(dtype), p.astype(dtype), y.astype(dtype)


def fract(x):
    return np.minimum(x - np.floor(x), np.nextafter(np.float32(1), np.float32(0)))


def smoothstep(e0, e1, x):
    t = np.clip((x - e0) / (e1 - e0), 0, 1)
    return t * t * (3 - 2 * t)


def float_reference(x, p, y):
    """(name, expected in float64, rtol) for each output column, from the MSL definitions."""
    return [
        ("exp", np.exp(x), 1e-6), ("exp2", np.exp2(x), 1e-6), ("log", np.log(p), 1e-6), ("log2", np.log2(p), 1e-6),
        ("rsqrt", 1 / np.sqrt(p), 1e-6), ("sqrt", np.sqrt(p), 1e-6), ("tanh", np.tanh(x), 1e-6),
        ("pow", np.power(p, x), 1e-5), ("fmod", np.fmod(x, y), 1e-6), ("fract", fract(x), 1e-6),
        ("clamp", np.clip(x, -1, 2), 0), ("mix", x + (y - x) * 0.25, 1e-6), ("select", np.where(x > 0, y, x), 0),
        ("fma", x * y + p, 1e-6), ("precise::exp", np.exp(x), 1e-6), ("precise::rsqrt", 1 / np.sqrt(p), 1e-6),
        ("fast::exp", np.exp(x), 1e-5), ("fast::tanh", np.tanh(x), 1e-5), ("sin", np.sin(x), 1e-6),
        ("cos", np.cos(x), 1e-6), ("floor", np.floor(x), 0), ("ceil", np.ceil(x), 0),
        ("round", np.sign(x) * np.floor(np.abs(x) + 0.5), 0), ("trunc", np.trunc(x), 0), ("rint", np.rint(x), 0),
        ("sign", np.sign(x), 0), ("step", np.where(x < 0.5, 0.0, 1.0), 0), ("abs", np.abs(x), 0),
        ("atan2", np.arctan2(x, y), 1e-6), ("log10", np.log10(p), 1e-6), ("fast::log", np.log(p), 1e-5),
        ("copysign", np.copysign(p, x), 0), ("smoothstep", smoothstep(-1, 1, x), 1e-6),
        ("max", np.maximum(x, y), 0), ("min", np.minimum(x, y), 0), ("fmax(x, NaN)", x, 0),
    ]  # fmt: skip


@pytest.mark.parametrize("n", [1, 33, 500])
def test_math_float(lib, n):
    """Each float function matches numpy in float64 within a few float ulps (exact where MSL defines it exactly)."""
    x, p, y = inputs(n)
    refs = float_reference(*(v.astype(np.float64) for v in (x, p, y)))
    out = torch.full((n, len(refs)), float("nan"))
    lib.math_float(x, p, y, out, threads=n, group_size=64)
    got = out.numpy().astype(np.float64)
    for k, (name, want, rtol) in enumerate(refs):
        np.testing.assert_allclose(got[:, k], want, rtol=rtol, atol=1e-6 if rtol else 0, err_msg=name)


def test_math_half(lib):
    """half overloads return half: the result is the float64 value rounded to half, within 1 half ulp."""
    x, p, y = inputs(300, seed=1, dtype=np.float16)
    p = np.minimum(p, np.float16(8))
    out = torch.full((300, 13), float("nan"), dtype=torch.float16)
    lib.math_half(x, p, y, out, threads=300, group_size=100)
    x64, p64, y64 = (v.astype(np.float64) for v in (x, p, y))
    refs = [
        ("exp", np.exp(x64)), ("log", np.log(p64)), ("rsqrt", 1 / np.sqrt(p64)), ("tanh", np.tanh(x64)),
        ("pow", np.power(p64, (np.float16(0.5) * x).astype(np.float64))), ("fmod", np.fmod(x64, y64)),
        ("fract", x64 - np.floor(x64)), ("clamp", np.clip(x64, -1, 2)), ("mix", None),
        ("select", np.where(x64 > 0, y64, x64)), ("fma", x64 * y64 + p64), ("sqrt", np.sqrt(p64)),
        ("precise::exp", np.exp(x64)),
    ]  # fmt: skip
    got = out.numpy()
    for k, (name, want) in enumerate(refs):
        if want is None:  # mix in half: x + (y - x) * a, each operation rounded or not; allow 2 half ulps
            want = x64 + (y64 - x64) * 0.25
            np.testing.assert_allclose(got[:, k], want, rtol=2e-3, atol=2e-3, err_msg=name)
            continue
        w16 = want.astype(np.float16).astype(np.float64)
        ulp = np.spacing(np.abs(want.astype(np.float16))).astype(np.float64)
        np.testing.assert_array_less(np.abs(got[:, k].astype(np.float64) - w16), ulp * 1.01 + 1e-7, err_msg=name)


def test_math_float4_and_geometric(lib):
    """Vector overloads act per component; dot, length and normalize follow their definitions."""
    rng = np.random.default_rng(2)
    a = rng.uniform(-3, 3, (40, 4)).astype(np.float32)
    b = rng.uniform(-3, 3, (40, 4)).astype(np.float32)
    out = torch.full((40, 6, 4), float("nan"))
    scalars = torch.full((40, 2), float("nan"))
    lib.math_float4(a, b, out, scalars, threads=40, group_size=8)
    A, B = a.astype(np.float64), b.astype(np.float64)
    got = out.numpy()
    np.testing.assert_allclose(got[:, 0], np.exp(A), rtol=1e-6)
    np.testing.assert_array_equal(got[:, 1], np.clip(a, -1, [0.5, 1, 1.5, 2]))
    np.testing.assert_allclose(got[:, 2], A + (B - A) * [0, 0.25, 0.5, 1], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(got[:, 3], np.where(a > b, b, a))
    np.testing.assert_allclose(got[:, 4], A * B + 1, rtol=1e-6, atol=1e-6)
    norm = np.linalg.norm(A, axis=1, keepdims=True)
    np.testing.assert_allclose(got[:, 5], A / norm, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scalars[:, 0].numpy(), (A * B).sum(1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(scalars[:, 1].numpy(), norm[:, 0], rtol=1e-6)
