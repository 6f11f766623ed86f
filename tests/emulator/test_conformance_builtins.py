"""Conformance: compute builtins (positions, sizes, SIMD/quad indices) and non-uniform edge threadgroups."""

from __future__ import annotations

import numpy as np
import pytest
import torch

SIMD = 32


@pytest.fixture(scope="module")
def lib(msl):
    return msl("builtins.metal")


def ceil_div(a, b):
    return -(-a // b)


def expected_per_axis(grid, group):
    """Per-axis builtins of every grid position, from dispatchThreads semantics (edge groups are smaller)."""
    axes = []
    for n, g in zip(grid, group):
        pos = np.arange(n)
        tg = pos // g
        axes.append(dict(gid=pos, lid=pos % g, tgid=tg, tpg=np.minimum(g, n - tg * g), grid=n, ngroups=ceil_div(n, g)))
    return axes


@pytest.mark.parametrize("n,group", [(1, 1), (7, 3), (31, 32), (32, 32), (33, 32), (100, 33), (97, 64), (1000, 1024),
                                     (129, 128)])
def test_builtins_1d(lib, n, group):
    """Every 1-D builtin matches dispatchThreads semantics, including the reduced last threadgroup."""
    out = torch.full((n, 14), 0xDEADBEEF, dtype=torch.int64).to(torch.uint32)
    lib.builtins_1d(out, threads=n, group_size=group)
    got = out.numpy().astype(np.int64)
    ax = expected_per_axis((n,), (group,))[0]
    lid, tpg = ax["lid"], ax["tpg"]
    want = np.stack([
        ax["gid"], lid, ax["tgid"], tpg, np.full(n, n), np.full(n, ax["ngroups"]),
        lid, lid % SIMD, lid // SIMD, np.full(n, SIMD), (tpg + SIMD - 1) // SIMD,
        lid % 4, lid // 4, np.full(n, SIMD),
    ], axis=1)  # fmt: skip
    names = ["gid", "lid", "tgid", "tpg", "grid", "ngroups", "tidx", "lane", "sg", "sg_width", "nsg", "qlane", "qg",
             "exec_width"]
    for k, name in enumerate(names):
        np.testing.assert_array_equal(got[:, k], want[:, k], err_msg=f"builtin {name}")


@pytest.mark.parametrize("grid,group", [((1, 1, 1), (1, 1, 1)), ((5, 3, 2), (2, 2, 2)), ((37, 5, 3), (8, 4, 2)),
                                        ((33, 2, 1), (33, 1, 1)), ((9, 7, 5), (4, 4, 4)), ((3, 40, 1), (1, 32, 1))])
def test_builtins_3d(lib, grid, group):
    """uint3 builtins in a 3-D grid with edge groups on every axis; linear and SIMD indices are x-fastest."""
    X, Y, Z = grid
    out = torch.full((Z, Y, X, 22), 0xDEADBEEF, dtype=torch.int64).to(torch.uint32)
    lib.builtins_3d(out, threads=grid, group_size=group)
    got = out.numpy().astype(np.int64)
    ax = expected_per_axis(grid, group)
    for z in range(Z):
        for y in range(Y):
            for x in range(X):
                p = (x, y, z)
                lid = [ax[i]["lid"][p[i]] for i in range(3)]
                tpg = [ax[i]["tpg"][p[i]] for i in range(3)]
                tidx = lid[0] + lid[1] * tpg[0] + lid[2] * tpg[0] * tpg[1]
                want = ([ax[i]["gid"][p[i]] for i in range(3)] + lid + [ax[i]["tgid"][p[i]] for i in range(3)] + tpg +
                        list(grid) + [ax[i]["ngroups"] for i in range(3)] +
                        [tidx, tidx % SIMD, tidx // SIMD, ceil_div(tpg[0] * tpg[1] * tpg[2], SIMD)])
                assert list(got[z, y, x]) == want, f"thread {p}"


@pytest.mark.parametrize("grid,group", [((37, 5), (8, 4)), ((31, 3), (32, 1)), ((17, 19), (5, 7)), ((1, 1), (1, 1))])
def test_builtins_2d_short_forms(lib, grid, group):
    """ushort/ushort2/uint2 builtin declarations in a 2-D grid; a scalar uint declaration of a 3-D builtin is its .x."""
    X, Y = grid
    out = torch.full((Y, X, 12), 0xDEADBEEF, dtype=torch.int64).to(torch.uint32)
    lib.builtins_2d_short(out, threads=grid, group_size=group)
    got = out.numpy().astype(np.int64)
    ax = expected_per_axis(grid, group)
    for y in range(Y):
        for x in range(X):
            lx, ly = ax[0]["lid"][x], ax[1]["lid"][y]
            tx, ty = ax[0]["tpg"][x], ax[1]["tpg"][y]
            tidx = lx + ly * tx
            want = [x, y, lx, ly, ax[0]["tgid"][x], ax[1]["tgid"][y], tx, ty, tidx, tidx % SIMD, tidx // SIMD, x]
            assert list(got[y, x]) == want, f"thread {(x, y)}"


def test_edge_groups_cover_grid_exactly_once(lib):
    """A 2-D grid that is not a multiple of the group size runs every position exactly once and nothing outside."""
    X, Y = 23, 11
    out = torch.full((Y + 1, X + 1, 12), 0xDEADBEEF, dtype=torch.int64).to(torch.uint32)
    # The kernel writes row y*X + x; a grid of (X, Y) must touch exactly the first X*Y rows.
    flat = out.view(-1, 12)
    lib.builtins_2d_short(flat, threads=(X, Y), group_size=(4, 4))
    got = flat.numpy().astype(np.int64)
    np.testing.assert_array_equal(got[: X * Y, 0], np.tile(np.arange(X), Y))
    np.testing.assert_array_equal(got[: X * Y, 1], np.repeat(np.arange(Y), X))
    assert (got[X * Y :] == 0xDEADBEEF).all()


def test_plain_kernel_takes_fast_path(lib):
    """A kernel with no barrier or collective is classified barrier-free (plain loop) and still computes correctly."""
    assert lib.kernels["plain_scale"].uses_fibers is False
    x = torch.randn(77)
    y = torch.full_like(x, float("nan"))
    lib.plain_scale(x, y, threads=77, group_size=32)
    torch.testing.assert_close(y, 3 * x)


@pytest.mark.parametrize("n,group", [(32, 32), (70, 35)])
def test_collective_in_helper_needs_fibers(lib, n, group):
    """simd_sum called from a helper function marks the kernel as needing fibers, and it reduces per SIMD group."""
    assert lib.kernels["helper_simd_sum"].uses_fibers is True
    x = torch.arange(n, dtype=torch.float32)
    y = torch.full_like(x, float("nan"))
    lib.helper_simd_sum(x, y, threads=n, group_size=group)
    want = np.empty(n, np.float32)
    for start in range(0, n, group):
        g = np.arange(start, min(start + group, n))
        for s in range(0, len(g), SIMD):
            lanes = g[s : s + SIMD]
            want[lanes] = lanes.sum()
    np.testing.assert_array_equal(y.numpy(), want)


@pytest.mark.parametrize("grid,group", [((10, 3, 1), (4, 2, 1)), ((37, 5, 3), (8, 4, 2)), ((7, 1, 1), (9, 1, 1))])
def test_dispatch_builtins(lib, grid, group):
    """dispatch_* builtins report the requested group size; quadgroups_per_threadgroup the reduced edge group."""
    X, Y, Z = grid
    out = torch.full((Z, Y, X, 6), 0xDEADBEEF, dtype=torch.int64).to(torch.uint32)
    lib.builtins_dispatch(out, threads=grid, group_size=group)
    got = out.numpy().astype(np.int64)
    ax = expected_per_axis(grid, group)
    size = group[0] * group[1] * group[2]
    for z in range(Z):
        for y in range(Y):
            for x in range(X):
                p = (x, y, z)
                actual = int(np.prod([ax[i]["tpg"][p[i]] for i in range(3)]))
                want = [*group, ceil_div(actual, 4), ceil_div(size, SIMD), ceil_div(size, 4)]
                assert list(got[z, y, x]) == want, f"thread {p}"
