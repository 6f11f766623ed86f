"""Conformance: position builtins of a kernel whose threads never meet, on ragged grids (edge threadgroups smaller
on every axis), and nothing written outside the grid. The NVIDIA lane runs this file's ragged grids as one launch
with padding threads (tests/nvidia_lane/test_gpu_conformance_positions.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emulator.test_conformance_builtins import expected_per_axis

GRIDS = [((1, 1, 1), (1, 1, 1)), ((37, 5, 3), (8, 4, 2)), ((1376, 8, 1), (256, 1, 1)), ((8, 40, 8), (8, 32, 1)),
         ((9, 7, 5), (4, 4, 4)), ((64, 2, 1), (32, 2, 1)), ((5, 3, 2), (8, 4, 4)), ((8, 10, 6), (8, 32, 1))]


@pytest.fixture(scope="module")
def lib(msl):
    return msl("positions.metal")


@pytest.mark.parametrize("grid,group", GRIDS)
def test_position_builtins_on_ragged_grids(lib, grid, group):
    X, Y, Z = grid
    out = torch.full((Z * Y * X + 7, 18), 0xDEADBEEF, dtype=torch.int64).to(torch.uint32)
    lib.positions_3d(out, threads=grid, group_size=group)
    got = out.numpy().astype(np.int64)
    ax = expected_per_axis(grid, group)
    z, y, x = np.meshgrid(np.arange(Z), np.arange(Y), np.arange(X), indexing="ij")
    pos = (x.ravel(), y.ravel(), z.ravel())
    for k, name in enumerate(("gid", "lid", "tgid", "tpg", "grid", "ngroups")):
        for d in range(3):
            want = np.broadcast_to(np.asarray(ax[d][name])[pos[d]] if np.ndim(ax[d][name]) else ax[d][name],
                                   pos[d].shape)
            np.testing.assert_array_equal(got[: X * Y * Z, 3 * k + d], want, err_msg=f"{name}[{d}]")
    assert (got[X * Y * Z:] == 0xDEADBEEF).all()  # no thread past the grid wrote
