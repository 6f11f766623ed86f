"""Conformance: half/bfloat conversions and per-operation rounding, against numpy float16 and torch bfloat16."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def lib(msl):
    return msl("fp16.metal")


def tricky_floats():
    """Ties, values at the overflow threshold, subnormals, signed zeros, infinities, NaN and random magnitudes."""
    rng = np.random.default_rng(0)
    special = [0.0, -0.0, 1.0, -1.0, 65504.0, 65519.99, 65520.0, 65536.0, 1e9, -1e9, np.inf, -np.inf, np.nan,
               2.0**-14, 2.0**-24, 2.0**-25, 2.0**-25 * 1.0001, 2.0**-26, 3 * 2.0**-25, 2.0**-24 * 1.5, 2.0**-24 * 2.5,
               1.0 + 2.0**-11, 1.0 + 3 * 2.0**-11, 1.0 + 2.0**-11 + 2.0**-20, 2049.0, 2051.0, 6.1e-5, 1e-45,
               3.4e38, -3.4e38, 1.0 + 2.0**-8, 1.0 + 3 * 2.0**-8, 1.0 + 2.0**-8 + 2.0**-20]
    # Halfway points between neighbouring halves (exact in float32) and random magnitudes over the whole range.
    h = rng.integers(0, 0x7BFF, 500).astype(np.uint16).view(np.float16).astype(np.float32)
    ties = (h.astype(np.float64) + np.nextafter(h.astype(np.float16), np.float16(np.inf)).astype(np.float64)) / 2
    mags = np.exp(rng.uniform(-110, 88, 2000)) * rng.choice([-1, 1], 2000)
    return np.concatenate([special, ties, mags, rng.standard_normal(500)]).astype(np.float32)


def test_float_to_half_rounds_to_nearest_even(lib):
    """half(float) is IEEE round-to-nearest-even: ties to even, overflow to inf at 65520, subnormals, NaN stays NaN."""
    x = tricky_floats()
    out = torch.full((len(x),), 0x7E00, dtype=torch.int16).view(torch.float16)
    lib.float_to_half(x, out, threads=len(x), group_size=64)
    with np.errstate(over="ignore"):
        want = x.astype(np.float16)
    got = out.numpy()
    nan = np.isnan(want)
    assert (np.isnan(got) == nan).all()
    np.testing.assert_array_equal(got[~nan].view(np.uint16), want[~nan].view(np.uint16))


def test_float_to_bfloat_rounds_to_nearest_even(lib):
    """bfloat(float) rounds to nearest even like torch's conversion, overflowing to inf, keeping NaN."""
    x = tricky_floats()
    out = torch.zeros(len(x), dtype=torch.bfloat16)
    lib.float_to_bfloat(x, out, threads=len(x), group_size=64)
    want = torch.from_numpy(x).to(torch.bfloat16)
    nan = want.isnan()
    assert torch.equal(out.isnan(), nan)
    assert torch.equal(out[~nan].view(torch.int16), want[~nan].view(torch.int16))


def test_every_half_widens_exactly(lib):
    """float(half) is exact for all 65536 bit patterns (subnormals, infinities; NaNs stay NaN)."""
    out = torch.zeros(65536)
    lib.half_bits_to_float(out, threads=65536, group_size=1024)
    want = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)
    got = out.numpy()
    nan = np.isnan(want)
    assert (np.isnan(got) == nan).all()
    np.testing.assert_array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))


def test_bfloat_widens_exactly(lib):
    """float(bfloat) is the bit pattern shifted left by 16."""
    bits = np.random.default_rng(1).integers(0, 65536, 4096).astype(np.uint16)
    x = torch.from_numpy(bits.view(np.int16)).view(torch.bfloat16)
    out = torch.zeros(4096)
    lib.bfloat_to_float(x, out, threads=4096, group_size=256)
    want = x.to(torch.float32)
    nan = want.isnan()
    assert torch.equal(out.isnan(), nan)
    assert torch.equal(out[~nan], want[~nan])


@pytest.mark.parametrize("n", [1, 33, 1000])
def test_half_arithmetic_rounds_every_operation(lib, n):
    """half*half+half rounds twice, fma once, compound assignment rounds each step: matches numpy float16 op by op."""
    rng = np.random.default_rng(n)
    a = rng.uniform(-4, 4, n).astype(np.float16)
    b = (rng.uniform(0.5, 3, n) * rng.choice([-1, 1], n)).astype(np.float16)
    c = rng.uniform(-4, 4, n).astype(np.float16)
    out = torch.full((n, 5), float("nan"), dtype=torch.float16)
    lib.half_arith(a, b, c, out, threads=n, group_size=32)
    f64 = lambda v: v.astype(np.float64)  # noqa: E731
    want = np.stack([
        a * b + c,
        a / b,
        (a - b) * (a + b),
        (f64(a) * f64(b) + f64(c)).astype(np.float16),
        (a + b) * c,
    ], 1)  # fmt: skip
    np.testing.assert_array_equal(out.numpy().view(np.uint16), want.view(np.uint16))
    # The per-operation rounding is observable: a float computation rounded once differs somewhere.
    once = (f64(a) * f64(b) + f64(c)).astype(np.float16)
    if n == 1000:
        assert (once != want[:, 0]).any()


def test_half_accumulation_stalls_at_2048(lib):
    """s += 1 in half stops growing at 2048, as 2049 rounds back to 2048 (sequential float16 sum in numpy agrees)."""
    ones = np.ones(3000, np.float16)
    out = torch.full((2,), float("nan"), dtype=torch.float16)
    lib.half_accumulate(ones, out, 3000, threads=2, group_size=2)
    want = np.float16(0)
    for v in ones:
        want = np.float16(want + v)
    assert want == 2048
    np.testing.assert_array_equal(out.numpy(), [want, want])


def test_half_times_float_is_float(lib):
    """half * float promotes to float: the product keeps float precision."""
    rng = np.random.default_rng(5)
    a = rng.uniform(-4, 4, 64).astype(np.float16)
    b = rng.uniform(-4, 4, 64).astype(np.float32)
    out = torch.full((64,), float("nan"))
    lib.half_times_float(a, b, out, threads=64, group_size=64)
    want = a.astype(np.float32) * b
    np.testing.assert_array_equal(out.numpy(), want)
    assert (want.astype(np.float16).astype(np.float32) != want).any()


def test_bfloat_arithmetic_rounds_every_operation(lib):
    """bfloat*bfloat, +, and x*y+y round to bfloat after each operation, like torch bfloat16 on CPU."""
    gen = torch.Generator().manual_seed(0)
    a = (torch.randn(500, generator=gen) * 10).to(torch.bfloat16)
    b = (torch.randn(500, generator=gen) * 10).to(torch.bfloat16)
    out = torch.full((500, 3), float("nan"), dtype=torch.bfloat16)
    lib.bfloat_arith(a, b, out, threads=500, group_size=100)
    want = torch.stack([a * b, a + b, a * b + b], 1)
    assert torch.equal(out.view(torch.int16), want.view(torch.int16))


def test_half_limits_literals_and_vectors(lib):
    """numeric_limits<half>, the 0.1h literal and half4 arithmetic give numpy float16's values."""
    out = torch.full((9,), float("nan"), dtype=torch.float16)
    fout = torch.full((2,), float("nan"))
    lib.half_misc(out, fout, threads=1, group_size=1)
    fi = np.finfo(np.float16)
    tenth = np.float16(0.1)
    want = np.array([fi.max, fi.tiny, fi.eps, np.inf, tenth, *(np.arange(1, 5, dtype=np.float16) * tenth)], np.float16)
    np.testing.assert_array_equal(out.numpy(), want)
    assert fout[0].item() == torch.finfo(torch.bfloat16).max
    one, small = torch.tensor(1.0, dtype=torch.bfloat16), torch.tensor(0.001, dtype=torch.bfloat16)
    assert fout[1].item() == (one + small).item()
