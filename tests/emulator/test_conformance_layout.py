"""Conformance: host-visible memory layout (float3 = 16 bytes, packed_float3 = 12), metal::array, matrices."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def lib(msl):
    return msl("layout.metal")


def test_struct_layout_read_back_from_bytes(lib):
    """struct { float3 a; float b; } is 32 bytes with b at offset 16; with packed_float3 it is 16 bytes, b at 12."""
    n = 5
    s3 = torch.full((n * 32,), 0xAB, dtype=torch.uint8)
    sp = torch.full((n * 16,), 0xAB, dtype=torch.uint8)
    sizes = torch.zeros(10, dtype=torch.int64).to(torch.uint32)
    lib.write_structs(s3, sp, sizes, threads=n, group_size=n)
    assert sizes.tolist() == [32, 16, 16, 12, 16, 8, 8, 32, 48, 6]
    rec3 = np.dtype({"names": ["a", "b"], "formats": [("<f4", 3), "<f4"], "offsets": [0, 16], "itemsize": 32})
    recp = np.dtype({"names": ["a", "b"], "formats": [("<f4", 3), "<f4"], "offsets": [0, 12], "itemsize": 16})
    a3 = s3.numpy().view(rec3)
    ap = sp.numpy().view(recp)
    g = np.arange(n, dtype=np.float32)
    np.testing.assert_array_equal(a3["a"], np.stack([g, g + 0.5, -g], 1))
    np.testing.assert_array_equal(a3["b"], 1000 + g)
    np.testing.assert_array_equal(ap["a"], np.stack([g, g + 0.25, -g], 1))
    np.testing.assert_array_equal(ap["b"], 2000 + g)
    # The kernel writes only the members: the float3 padding (bytes 12..15) and the tail (20..31) stay untouched.
    raw = s3.numpy().reshape(n, 32)
    assert (raw[:, 20:] == 0xAB).all()


@pytest.mark.parametrize("n", [1, 7, 33])
def test_vector_array_strides_and_struct_argument(lib, n):
    """A float3 array has a 16-byte stride, packed_float3 a 12-byte one; a struct argument passed as bytes binds."""
    rng = np.random.default_rng(n)
    v3 = np.zeros((n, 4), np.float32)
    v3[:, :3] = rng.integers(-9, 9, (n, 3))
    v3[:, 3] = np.nan  # padding lane: must never be read
    p3 = rng.integers(-9, 9, (n, 3)).astype(np.float32)
    params = struct.pack("<3f4xfI8x", 1.0, 2.0, 3.0, 0.5, n)
    assert len(params) == 32
    out = torch.full((n, 2), float("nan"))
    lib.read_vectors(v3, p3, params, out, threads=n + 3, group_size=4)
    a = v3[:, :3] + [1, 2, 3]
    b = p3 * 0.5
    w = np.array([1, 10, 100], np.float32)
    np.testing.assert_allclose(out.numpy(), np.stack([a @ w, b @ w], 1), rtol=1e-6)


def test_metal_array(lib):
    """metal::array as a struct member (Horner polynomial), as a local, with size() and range-for."""
    x = torch.linspace(-2, 2, 41)
    coeffs = np.array([1.5, -2.0, 0.25, 3.0], np.float32)
    out = torch.full((41, 2), float("nan"))
    lib.array_poly(x, coeffs.tobytes(), out, threads=41, group_size=16)
    xs = x.numpy().astype(np.float64)
    np.testing.assert_allclose(out[:, 0].numpy(), np.polyval(coeffs[::-1], xs), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out[:, 1].numpy(), xs + xs**2 + xs**3, rtol=1e-5, atol=1e-5)


def test_matrices_column_major(lib):
    """float4x4 is column-major (m[i] is column i): m*v, v*m, transpose, m*m, float2x3 * float2, determinant."""
    rng = np.random.default_rng(0)
    buf = rng.integers(-5, 5, 16).astype(np.float32)  # column-major storage
    M = buf.reshape(4, 4).T.astype(np.float64)  # M[row, col]
    v = rng.integers(-5, 5, (6, 4)).astype(np.float32)
    m23 = rng.integers(-5, 5, 6).astype(np.float32)  # two columns of 3 rows
    A = m23.reshape(2, 3).T.astype(np.float64)  # 3 rows x 2 columns
    out = torch.full((6, 20), float("nan"))
    lib.matrix_ops(buf.tobytes(), v, m23, out, threads=6, group_size=6)
    got = out.numpy()
    vs = v.astype(np.float64)
    np.testing.assert_array_equal(got[:, 0:4], vs @ M.T)
    np.testing.assert_array_equal(got[:, 4:8], vs @ M)
    np.testing.assert_array_equal(got[:, 8:12], vs @ M)
    np.testing.assert_array_equal(got[:, 12], M[2, 1])
    np.testing.assert_array_equal(got[:, 13], (M @ M)[0, 3])
    np.testing.assert_array_equal(got[:, 14:17], vs[:, :2] @ A.T)
    np.testing.assert_array_equal(got[:, 17], 8.0)
    np.testing.assert_array_equal(got[:, 18], M[3, 3])
    np.testing.assert_array_equal(got[:, 19], 2 * M[0, 0])
