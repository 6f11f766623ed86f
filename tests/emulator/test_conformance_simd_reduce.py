"""Conformance: simd_* reductions, prefix scans and votes over the active lanes of each SIMD group."""

from __future__ import annotations

import numpy as np
import pytest
import torch

SIMD = 32
SHAPES = [(1, 1), (31, 32), (32, 32), (33, 33), (64, 64), (100, 100), (70, 35), (97, 48)]  # (threads, group size)


@pytest.fixture(scope="module")
def lib(msl):
    return msl("simd_reduce.metal")


def simd_groups(n, group):
    """Global thread indices of every SIMD group of a 1-D dispatch (the last one of a threadgroup may be partial)."""
    for start in range(0, n, group):
        members = np.arange(start, min(start + group, n))
        for s in range(0, len(members), SIMD):
            yield members[s : s + SIMD]


def float_input(n, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).uniform(-2, 2, n).astype(np.float32))


@pytest.mark.parametrize("n,group", SHAPES)
def test_simd_reductions_float(lib, n, group):
    """simd_sum/min/max/product of float over each (possibly partial) SIMD group, the same result in every lane."""
    x = float_input(n)
    xp = torch.from_numpy(np.random.default_rng(1).uniform(0.7, 1.3, n).astype(np.float32))
    out = torch.full((n, 4), float("nan"))
    lib.simd_reduce_float(x, out, threads=n, group_size=group)
    outp = torch.full((n, 4), float("nan"))
    lib.simd_reduce_float(xp, outp, threads=n, group_size=group)
    xs, xps = x.numpy().astype(np.float64), xp.numpy().astype(np.float64)
    for g in simd_groups(n, group):
        np.testing.assert_allclose(out[g, 0].numpy(), xs[g].sum(), rtol=1e-5, atol=1e-5 * np.abs(xs[g]).sum())
        np.testing.assert_array_equal(out[g, 1].numpy(), np.float32(xs[g].min()))
        np.testing.assert_array_equal(out[g, 2].numpy(), np.float32(xs[g].max()))
        np.testing.assert_allclose(outp[g, 3].numpy(), xps[g].prod(), rtol=1e-5)


@pytest.mark.parametrize("n,group", SHAPES)
def test_simd_reductions_int(lib, n, group):
    """simd_sum/min/max/product/and/or/xor of int over each SIMD group, exact."""
    rng = np.random.default_rng(2)
    wide = rng.integers(-(2**20), 2**20, n).astype(np.int32)
    small = rng.choice(np.array([-1, 1, 1, 2], np.int32), n)  # products stay far from overflow
    results = []
    for values in (wide, small):
        out = torch.full((n, 7), -12345, dtype=torch.int32)
        lib.simd_reduce_int(torch.from_numpy(values), out, threads=n, group_size=group)
        results.append(out.numpy())
    for g in simd_groups(n, group):
        v = wide[g]
        want = [v.sum(), v.min(), v.max(), None, np.bitwise_and.reduce(v), np.bitwise_or.reduce(v),
                np.bitwise_xor.reduce(v)]
        for k, w in enumerate(want):
            if w is not None:
                np.testing.assert_array_equal(results[0][g, k], w, err_msg=f"op {k}")
        np.testing.assert_array_equal(results[1][g, 3], small[g].prod())


@pytest.mark.parametrize("n,group", [(40, 40), (64, 64)])
def test_simd_sum_vector_componentwise(lib, n, group):
    """simd_sum of a float4 reduces each component independently."""
    x = torch.from_numpy(np.random.default_rng(3).integers(-50, 50, (n, 4)).astype(np.float32))
    out = torch.full((n, 4), float("nan"))
    lib.simd_sum_float4(x, out, threads=n, group_size=group)
    for g in simd_groups(n, group):
        np.testing.assert_array_equal(out[g].numpy(), np.broadcast_to(x[g].numpy().sum(0), (len(g), 4)))


@pytest.mark.parametrize("n,group,which", [(64, 64, 0), (100, 100, 0), (100, 100, 3), (96, 96, 1)])
def test_simd_sum_only_one_simdgroup(lib, n, group, which):
    """Only SIMD group `which` calls simd_sum (divergence at SIMD-group granularity); the others are unaffected."""
    x = torch.from_numpy(np.arange(n, dtype=np.float32))
    out = torch.full((n,), float("nan"))
    lib.simd_sum_one_group(x, out, which, threads=n, group_size=group)
    for s, g in enumerate(simd_groups(n, group)):
        want = x[g].sum().item() if s == which else -1.0
        np.testing.assert_array_equal(out[g].numpy(), want)


@pytest.mark.parametrize("n,group,k", [(32, 32, 5), (33, 33, 1), (64, 64, 31), (100, 100, 17), (100, 50, 20),
                                       (45, 45, 32)])
def test_simd_sum_only_low_lanes(lib, n, group, k):
    """Lanes < k call simd_sum, the rest finish: the sum covers exactly the active lanes (and the partial group)."""
    x = torch.from_numpy(np.random.default_rng(4).integers(-100, 100, n).astype(np.float32))
    out = torch.full((n,), float("nan"))
    lib.simd_sum_low_lanes(x, out, k, threads=n, group_size=group)
    for g in simd_groups(n, group):
        active = g[:k]
        np.testing.assert_array_equal(out[active].numpy(), x[active].sum().item())
        np.testing.assert_array_equal(out[g[k:]].numpy(), -1.0)


@pytest.mark.parametrize("n,group", [(33, 33), (100, 100), (64, 32)])
def test_divergent_simd_sum_then_barrier(lib, n, group):
    """Odd lanes reduce while even lanes wait at a barrier; after it, all lanes reduce again together."""
    x = torch.from_numpy(np.random.default_rng(5).integers(-100, 100, n).astype(np.float32))
    out = torch.full((n, 2), float("nan"))
    lib.simd_sum_then_barrier(x, out, threads=n, group_size=group)
    for g in simd_groups(n, group):
        odd = g[1::2]
        np.testing.assert_array_equal(out[odd, 0].numpy(), x[odd].sum().item())
        np.testing.assert_array_equal(out[g[0::2], 0].numpy(), -1.0)
        np.testing.assert_array_equal(out[g, 1].numpy(), x[g].sum().item())


@pytest.mark.parametrize("n,group", SHAPES)
def test_simd_prefix_scans(lib, n, group):
    """Inclusive/exclusive prefix sum and product over lanes in order (exclusive starts at 0 resp. 1)."""
    x = torch.from_numpy(np.random.default_rng(6).uniform(0.8, 1.25, n).astype(np.float32))
    out = torch.full((n, 4), float("nan"))
    lib.simd_scans_float(x, out, threads=n, group_size=group)
    xi = torch.from_numpy(np.random.default_rng(7).integers(-1000, 1000, n).astype(np.int32))
    outi = torch.full((n, 2), -999999, dtype=torch.int32)
    lib.simd_scans_int(xi, outi, threads=n, group_size=group)
    for g in simd_groups(n, group):
        v = x[g].numpy().astype(np.float64)
        inc_sum, inc_prod = np.cumsum(v), np.cumprod(v)
        exc_sum, exc_prod = np.concatenate([[0.0], inc_sum[:-1]]), np.concatenate([[1.0], inc_prod[:-1]])
        for k, want in enumerate((inc_sum, exc_sum, inc_prod, exc_prod)):
            np.testing.assert_allclose(out[g, k].numpy(), want, rtol=1e-5, atol=1e-6, err_msg=f"scan {k}")
        vi = xi[g].numpy().astype(np.int64)
        np.testing.assert_array_equal(outi[g, 0].numpy(), np.cumsum(vi))
        np.testing.assert_array_equal(outi[g, 1].numpy(), np.cumsum(vi) - vi)


@pytest.mark.parametrize("n,group", [(32, 32), (33, 33), (100, 100), (128, 64)])
def test_divergent_exclusive_scan_compaction(lib, n, group):
    """simd_prefix_exclusive_sum inside `if (x > 0)` counts only the active lanes below: a stream-compaction slot."""
    x = torch.from_numpy(np.random.default_rng(8).standard_normal(n).astype(np.float32))
    slot = torch.full((n,), -99, dtype=torch.int32)
    lib.compact_positive(x, slot, threads=n, group_size=group)
    for g in simd_groups(n, group):
        positive = x[g].numpy() > 0
        want = np.where(positive, np.cumsum(positive) - positive, -1)
        np.testing.assert_array_equal(slot[g].numpy(), want)


@pytest.mark.parametrize("n,group,k", [(32, 32, 32), (33, 33, 32), (100, 100, 32), (64, 64, 7), (70, 35, 20)])
@pytest.mark.parametrize("density", [0.0, 0.5, 1.0])
def test_simd_votes(lib, n, group, k, density):
    """simd_all/any/ballot/active_threads_mask/is_first consider only active lanes (lanes >= k returned early)."""
    pred = (np.random.default_rng(9).uniform(size=n) < density).astype(np.int32)
    out = torch.zeros((n, 7), dtype=torch.int64).to(torch.uint32)
    lib.simd_votes(torch.from_numpy(pred), out, k, threads=n, group_size=group)
    got = out.numpy().astype(np.int64)
    for g in simd_groups(n, group):
        active = g[:k]
        lanes = np.arange(len(active))
        p = pred[active].astype(bool)
        ballot = int(sum(1 << int(l) for l in lanes[p]))
        mask = int(sum(1 << int(l) for l in lanes))
        for j, t in enumerate(active):
            want = [int(p.all()), int(p.any()), ballot & 0xFFFFFFFF, ballot >> 32, mask & 0xFFFFFFFF, mask >> 32,
                    int(j == 0)]
            assert list(got[t]) == want, f"thread {t}"
        assert (got[g[k:]] == 0xEEEEEEEE).all()


@pytest.mark.parametrize("n,group", [(32, 32), (45, 45)])
def test_simd_ops_on_half(lib, n, group):
    """simd_sum/max/prefix sum of half return half (max exact, sums within half rounding of the exact value)."""
    x = torch.from_numpy(np.random.default_rng(12).uniform(-1, 1, n).astype(np.float16))
    out = torch.full((n, 3), float("nan"), dtype=torch.float16)
    lib.simd_half_ops(x, out, threads=n, group_size=group)
    for g in simd_groups(n, group):
        v = x[g].numpy().astype(np.float64)
        np.testing.assert_allclose(out[g, 0].numpy().astype(np.float64), v.sum(), atol=len(g) * 2**-11)
        np.testing.assert_array_equal(out[g, 1].numpy(), np.float16(v.max()))
        np.testing.assert_allclose(out[g, 2].numpy().astype(np.float64), np.cumsum(v), atol=len(g) * 2**-11)


@pytest.mark.parametrize("seed", [0, 1])
def test_collectives_independent_of_lane_order(lib, seed):
    """Reductions, scans and votes give the same results when lanes run in a shuffled order."""
    n, group = 100, 100
    x = torch.from_numpy(np.random.default_rng(13).integers(-(2**20), 2**20, n).astype(np.int32))
    fixed, shuffled = torch.zeros((n, 7), dtype=torch.int32), torch.zeros((n, 7), dtype=torch.int32)
    lib.simd_reduce_int(x, fixed, threads=n, group_size=group)
    lib.simd_reduce_int(x, shuffled, threads=n, group_size=group, order="shuffled", seed=seed)
    assert torch.equal(fixed, shuffled)
    a, b = torch.zeros((n, 2), dtype=torch.int32), torch.zeros((n, 2), dtype=torch.int32)
    lib.simd_scans_int(x, a, threads=n, group_size=group)
    lib.simd_scans_int(x, b, threads=n, group_size=group, order="shuffled", seed=seed)
    assert torch.equal(a, b)


@pytest.mark.parametrize("grid,group", [((16, 4), (16, 4)), ((13, 7), (5, 7)), ((20, 9), (8, 8))])
def test_simd_groups_of_2d_threadgroups(lib, grid, group):
    """SIMD groups of 2-D (and reduced edge) threadgroups are runs of 32 linear indices, x fastest."""
    X, Y = grid
    x = torch.from_numpy(np.random.default_rng(14).integers(-100, 100, X * Y).astype(np.float32))
    out = torch.full((X * Y,), float("nan"))
    lib.simd_sum_2d(x, out, threads=grid, group_size=group)
    want = np.empty(X * Y, np.float32)
    xs = x.numpy()
    for ty in range(0, Y, group[1]):
        for tx in range(0, X, group[0]):
            w, h = min(group[0], X - tx), min(group[1], Y - ty)
            members = [(ty + ly) * X + tx + lx for ly in range(h) for lx in range(w)]  # linear order, x fastest
            for s in range(0, len(members), SIMD):
                simd = members[s : s + SIMD]
                want[simd] = xs[simd].sum()
    np.testing.assert_array_equal(out.numpy(), want)


@pytest.mark.parametrize("n,group", [(32, 32), (40, 40)])
def test_simd_sum_in_ragged_loop(lib, n, group):
    """simd_sum at one call site inside a loop: in iteration i only the lanes still looping (lane > i) take part."""
    out = torch.full((n,), float("nan"))
    lib.simd_sum_in_ragged_loop(out, threads=n, group_size=group)
    for g in simd_groups(n, group):
        lanes = np.arange(len(g))
        active_in_iteration = [(lanes > i).sum() for i in range(len(g))]
        want = [sum(active_in_iteration[:lane]) for lane in lanes]
        np.testing.assert_array_equal(out[g].numpy(), want)
