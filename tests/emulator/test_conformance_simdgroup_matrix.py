"""Conformance: simdgroup_matrix multiply/load/store (float, half, bfloat) against numpy matrix products."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def lib(msl):
    return msl("simdgroup_matrix.metal")


DTYPES = {"float": (torch.float32, 1e-5), "half": (torch.float16, 2e-3), "bfloat": (torch.bfloat16, 1e-2)}


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("m,n,k,sg_per_group", [(8, 8, 8, 1), (16, 24, 32, 2), (24, 8, 16, 4), (32, 32, 8, 3)])
@pytest.mark.parametrize("transpose_b", [False, True])
def test_simdgroup_gemm(lib, dtype, m, n, k, sg_per_group, transpose_b):
    """Tiled C = A @ B with elements_per_row, matrix_origin, transposed loads and multiply_accumulate over K."""
    tdtype, rtol = DTYPES[dtype]
    gen = torch.Generator().manual_seed(m * 1000 + n * 10 + k)
    a = torch.randn(m, k, generator=gen).to(tdtype)
    b = torch.randn(k, n, generator=gen).to(tdtype)
    b_arg = b.t().contiguous() if transpose_b else b
    c = torch.full((m, n), float("nan"))
    tiles = (m // 8) * (n // 8)
    groups = -(-tiles // sg_per_group)
    lib.dispatch(f"gemm_{dtype}", a, b_arg, c, struct.pack("<4I", m, n, k, 0), int(transpose_b),
                 threads=groups * 32 * sg_per_group, group_size=32 * sg_per_group)
    want = a.double() @ b.double()
    scale = (a.double().abs() @ b.double().abs())
    assert not c.isnan().any()
    assert ((c.double() - want).abs() <= rtol * scale + 1e-6).all(), (c.double() - want).abs().max()


def test_simdgroup_matrix_operators_half(lib):
    """operator* and operator+ on simdgroup_half8x8, a diagonal matrix from a scalar, and a transposed store."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(8, 8, generator=gen).to(torch.float16)
    b = torch.randn(8, 8, generator=gen).to(torch.float16)
    out = torch.full((4, 8, 8), float("nan"), dtype=torch.float16)
    lib.matrix_ops_half(a, b, out, threads=32, group_size=32)
    prod = (a.double() @ b.double())
    assert ((out[0].double() - prod).abs() <= 2e-3 * (a.double().abs() @ b.double().abs()) + 1e-3).all()
    assert torch.equal(out[1], a + b)
    assert torch.equal(out[2], 2 * a)
    assert torch.equal(out[3], a.t())


def test_thread_elements_lane_layout(lib):
    """Lane l holds row (l/16)*4 + (l/2)%4, columns ((l/8)%2)*4 + (l%2)*2 + {0, 1} (Apple's documented layout)."""
    out = torch.full((32, 2), float("nan"))
    lib.lane_layout(out, threads=32, group_size=32)
    got = out.numpy().astype(int)
    rows, cols = got // 8, got % 8
    # Every element appears exactly once; each lane holds two neighbouring columns of one row.
    assert sorted(got.ravel().tolist()) == list(range(64))
    assert (rows[:, 0] == rows[:, 1]).all() and (cols[:, 1] == cols[:, 0] + 1).all()
    lane = np.arange(32)
    np.testing.assert_array_equal(rows[:, 0], (lane // 16) * 4 + (lane // 2) % 4)
    np.testing.assert_array_equal(cols[:, 0], ((lane // 8) % 2) * 4 + (lane % 2) * 2)
