"""Conformance: integer functions and as_type bit casts, against bit manipulation done in numpy/Python."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def lib(msl):
    return msl("integer.metal")


def u32_tensor(values):
    return torch.from_numpy(np.asarray(values, dtype=np.uint32).view(np.int32).copy()).view(torch.uint32)


def interesting_u32(n, seed):
    rng = np.random.default_rng(seed)
    base = [0, 1, 2, 3, 0x80000000, 0xFFFFFFFF, 0x7FFFFFFF, 0x00010000, 0xDEADBEEF, 0x0000FFFF]
    rand = rng.integers(0, 2**32, n, dtype=np.uint64)
    shifts = np.uint64(1) << rng.integers(0, 32, n).astype(np.uint64)
    return np.concatenate([base, rand, shifts, rand >> rng.integers(0, 32, n).astype(np.uint64)]).astype(np.uint64)


def bits_reversed(v, width):
    return int(format(int(v), f"0{width}b")[::-1], 2)


def test_integer_uint(lib):
    """clz/ctz (32 for zero), popcount, mulhi, rotate, extract/insert_bits, reverse_bits, add/subsat, absdiff, hadd."""
    a = interesting_u32(200, 0)
    b = np.roll(interesting_u32(200, 1), 3)
    n = len(a)
    out = u32_tensor(np.full((n, 14), 0xEEEEEEEE))
    lib.integer_uint(u32_tensor(a), u32_tensor(b), out, threads=n, group_size=64)
    got = out.numpy().view(np.uint32).astype(np.int64)
    M = 0xFFFFFFFF
    for i in range(n):
        x, y = int(a[i]), int(b[i])
        s = y % 32
        want = [
            32 - x.bit_length(),
            (x & -x).bit_length() - 1 if x else 32,
            bin(x).count("1"),
            (x * y) >> 32,
            ((x << s) | (x >> (32 - s))) & M,
            (x >> s) & ((1 << (32 - s)) - 1),
            (x >> (s // 2)) & 0x1F,
            (x & ~(0xFF << 4) | ((y & 0xFF) << 4)) & M,
            bits_reversed(x, 32),
            min(x + y, M),
            max(x - y, 0),
            abs(x - y),
            (x + y) >> 1,
            (x + y + 1) >> 1,
        ]
        assert list(got[i]) == want, f"a={x:#x} b={y:#x}"


def test_integer_int(lib):
    """Signed mulhi, saturating add/sub at INT_MIN/INT_MAX, sign-extending extract_bits, abs, clz, popcount."""
    rng = np.random.default_rng(2)
    edge = [0, 1, -1, 2**31 - 1, -(2**31), 2**30, -(2**30), 12345, -12345]
    a = np.array(edge + list(rng.integers(-(2**31), 2**31, 300)), np.int64)
    b = np.array(edge[::-1] + list(rng.integers(-(2**31), 2**31, 300)), np.int64)
    n = len(a)
    out = torch.full((n, 7), -7, dtype=torch.int32)
    lib.integer_int(torch.from_numpy(a.astype(np.int32)), torch.from_numpy(b.astype(np.int32)), out,
                    threads=n, group_size=64)
    got = out.numpy().astype(np.int64)
    for i in range(n):
        x, y = int(a[i]), int(b[i])
        field = (x >> 3) & 0x7F
        ux = x & 0xFFFFFFFF
        want = [
            (x * y) >> 32,
            max(min(x + y, 2**31 - 1), -(2**31)),
            max(min(x - y, 2**31 - 1), -(2**31)),
            field - 128 if field & 0x40 else field,
            abs(x) if x != -(2**31) else -(2**31),
            32 - ux.bit_length(),
            bin(ux).count("1"),
        ]
        assert list(got[i]) == want, f"a={x} b={y}"


def test_integer_narrow_types(lib):
    """clz/ctz/popcount/reverse_bits count within ushort and uchar width; addsat saturates at 255."""
    h = np.array([0, 1, 0x8000, 0xFFFF, 0x00F0, 0x1234, 0x0100], np.uint16)
    c = np.array([0, 1, 0x80, 0xFF, 0x0F, 100, 55], np.uint8)
    out = torch.zeros((7, 6), dtype=torch.int64).to(torch.uint32)
    lib.integer_narrow(h, c, out, threads=7, group_size=7)
    got = out.numpy().astype(np.int64)
    for i in range(7):
        x, y = int(h[i]), int(c[i])
        want = [16 - x.bit_length(), (x & -x).bit_length() - 1 if x else 16, bin(y).count("1"), 8 - y.bit_length(),
                bits_reversed(x, 16), min(y + 200, 255)]
        assert list(got[i]) == want, f"h={x:#x} c={y:#x}"


def test_as_type_bit_casts(lib):
    """as_type between float/uint, uint/half2, half/ushort and uint/char4 keeps the bits (numpy .view agrees)."""
    f = np.array([1.0, -2.5, 0.0, -0.0, np.inf, 3.14159, 1e-40, 65504.0], np.float32)
    u = np.array([0x3F800000, 0xC0200000, 0, 0x80000000, 0x7F800000, 0x3C003C00, 0x12345678, 0xFFFF0001], np.uint32)
    n = len(f)
    out_u = u32_tensor(np.zeros(n))
    out_f = torch.full((n,), float("nan"))
    out_h2 = torch.zeros((n, 2), dtype=torch.float16)
    out_s = torch.zeros(n, dtype=torch.uint16)
    out_c4 = torch.zeros((n, 4), dtype=torch.int8)
    lib.bit_casts(f, u32_tensor(u), out_u, out_f, out_h2, out_s, out_c4, threads=n, group_size=n)
    np.testing.assert_array_equal(out_u.numpy().view(np.uint32), f.view(np.uint32))
    np.testing.assert_array_equal(out_f.numpy().view(np.uint32), u)
    np.testing.assert_array_equal(out_h2.numpy().view(np.uint16).reshape(-1), u.view(np.uint16))
    np.testing.assert_array_equal(out_s.numpy(), f.astype(np.float16).view(np.uint16))
    np.testing.assert_array_equal(out_c4.numpy().reshape(-1), u.view(np.int8))
