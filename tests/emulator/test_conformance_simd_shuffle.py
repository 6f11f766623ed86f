"""Conformance: simd_/quad_ shuffles, shifts, rotations, fills, broadcasts, and poison from inactive lanes."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

SIMD = 32


@pytest.fixture(scope="module")
def lib(msl):
    return msl("simd_shuffle.metal")


def move_args(delta=0, modulo=32, lane=0):
    return struct.pack("<3I", delta, modulo, lane)


def partitions(n, group, width):
    """Global indices of every SIMD group (width 32) or quad (width 4) of a 1-D dispatch."""
    for start in range(0, n, group):
        members = np.arange(start, min(start + group, n))
        for s in range(0, len(members), width):
            yield members[s : s + width]


@pytest.mark.parametrize("n,group", [(32, 32), (64, 64), (128, 64)])
@pytest.mark.parametrize("delta,modulo", [(0, 2), (1, 4), (3, 8), (5, 16), (16, 32), (31, 32)])
def test_simd_data_movement(lib, n, group, delta, modulo):
    """shuffle, shuffle_down/up (edge lanes keep their value), xor, rotate, and shuffle_and_fill with/without modulo."""
    rng = np.random.default_rng(delta * 100 + modulo)
    x = rng.standard_normal(n).astype(np.float32)
    fill = rng.standard_normal(n).astype(np.float32) + 100
    src = rng.integers(0, SIMD, n).astype(np.uint16)
    out = torch.full((n, 10), float("nan"))
    lib.simd_moves(x, fill, src, out, move_args(delta, modulo), threads=n, group_size=group)
    got = out.numpy()
    for g in partitions(n, group, SIMD):
        xs, fs = x[g], fill[g]
        p = np.arange(SIMD)
        want = np.empty((SIMD, 10), np.float32)
        want[:, 0] = xs[src[g]]
        want[:, 1] = np.where(p + delta < SIMD, xs[np.minimum(p + delta, SIMD - 1)], xs)
        want[:, 2] = np.where(p - delta >= 0, xs[np.maximum(p - delta, 0)], xs)
        want[:, 3] = xs[p ^ delta]
        want[:, 4] = xs[(p + delta) % SIMD]
        want[:, 5] = xs[(p - delta) % SIMD]
        for col, m in ((6, SIMD), (8, modulo)):
            seg, q = p // m * m, p % m
            down, up = q + delta, q - delta
            want[:, col] = np.where(down < m, xs[seg + down % m], fs[seg + down % m])
            want[:, col + 1] = np.where(up >= 0, xs[seg + up % m], fs[seg + up % m])
        names = ["shuffle", "shuffle_down", "shuffle_up", "shuffle_xor", "rotate_down", "rotate_up", "fill_down",
                 "fill_up", "fill_down_mod", "fill_up_mod"]
        for k, name in enumerate(names):
            np.testing.assert_array_equal(got[g, k], want[:, k], err_msg=name)


@pytest.mark.parametrize("n,group", [(32, 32), (64, 64), (33, 33), (100, 100)])
@pytest.mark.parametrize("lane,first", [(0, 0), (7, 3), (31, 31)])
def test_simd_broadcasts(lib, n, group, lane, first):
    """simd_broadcast reads a fixed lane; simd_broadcast_first reads the lowest active lane, also under divergence."""
    x = np.random.default_rng(lane).integers(-(2**30), 2**30, n).astype(np.int32)
    out = torch.full((n, 3), -7, dtype=torch.int32)
    lib.simd_broadcasts(x, out, move_args(delta=first, lane=lane), threads=n, group_size=group)
    got = out.numpy()
    for g in partitions(n, group, SIMD):
        if lane < len(g):  # reading a lane that does not exist is undefined: skip those groups for broadcast
            np.testing.assert_array_equal(got[g, 0], x[g[lane]])
        np.testing.assert_array_equal(got[g, 1], x[g[0]])
        np.testing.assert_array_equal(got[g[first:], 2], x[g[first]] if first < len(g) else [])
        np.testing.assert_array_equal(got[g[:first], 2], -1)


def test_simd_shuffle_vector_operand(lib):
    """A half2 operand moves as a whole: shuffle_xor(v, 1) swaps neighbouring lanes' pairs exactly."""
    x = torch.randn(64, 2).to(torch.float16)
    out = torch.full_like(x, float("nan"))
    lib.simd_shuffle_half2(x, out, threads=64, group_size=64)
    torch.testing.assert_close(out, x[torch.arange(64) ^ 1], rtol=0, atol=0)


def test_shuffle_from_inactive_lane_is_poison(lib):
    """simd_shuffle from a lane that did not call it is undefined on Apple GPUs: the emulator yields NaN."""
    x = torch.arange(64, dtype=torch.float32)
    out = torch.zeros(64)
    lib.shuffle_from_inactive(x, out, threads=64, group_size=64)
    lane = np.arange(64) % SIMD
    assert np.isnan(out.numpy()[lane < 16]).all()
    assert (out.numpy()[lane >= 16] == -1).all()


@pytest.mark.parametrize("size", [20, 45])
def test_shuffle_down_past_partial_group_is_poison(lib, size):
    """In a partial SIMD group, shuffle_down from a missing lane is NaN; lanes past lane 31 keep their value."""
    x = torch.arange(size, dtype=torch.float32) + 1
    out = torch.zeros(size)
    lib.shuffle_down_partial(x, out, threads=size, group_size=size)
    got = out.numpy()
    for g in partitions(size, size, SIMD):
        p = np.arange(len(g))
        src = p + 4
        keeps = src >= SIMD
        exists = src < len(g)
        np.testing.assert_array_equal(got[g[keeps]], x.numpy()[g[keeps]])
        np.testing.assert_array_equal(got[g[exists]], x.numpy()[g[src[exists]]])
        assert np.isnan(got[g[~exists & ~keeps]]).all()
        if len(g) < SIMD:
            assert (~exists & ~keeps).any()  # the partial group does read missing lanes


@pytest.mark.parametrize("n,group", [(32, 32), (36, 36), (64, 32), (30, 30), (13, 13)])
@pytest.mark.parametrize("lane,delta", [(0, 1), (3, 2), (1, 3)])
def test_quad_functions(lib, n, group, lane, delta):
    """quad_* functions act on aligned groups of 4 lanes; partial quads reduce over existing lanes only."""
    x = np.random.default_rng(lane * 10 + delta).integers(-100, 100, n).astype(np.float32)
    out = torch.full((n, 9), float("nan"))
    lib.quad_ops(x, out, move_args(delta=delta, lane=lane), threads=n, group_size=group)
    got = out.numpy()
    for q in partitions(n, group, 4):
        xs = x[q]
        p = np.arange(len(q))
        np.testing.assert_array_equal(got[q, 0], xs.sum())
        np.testing.assert_array_equal(got[q, 8], xs.max())
        np.testing.assert_array_equal(got[q, 3], np.cumsum(xs))
        np.testing.assert_array_equal(got[q, 4], np.cumsum(xs) - xs)
        for col, src, keep in ((1, np.full(len(q), lane), None), (2, np.full(len(q), lane), None), (5, p ^ delta, None),
                               (6, p + delta, p + delta >= 4), (7, p - delta, p - delta < 0)):
            keep = np.zeros(len(q), bool) if keep is None else keep
            exists = (src >= 0) & (src < len(q)) & ~keep
            np.testing.assert_array_equal(got[q[keep], col], xs[keep], err_msg=f"column {col} edge")
            np.testing.assert_array_equal(got[q[exists], col], xs[src[exists]], err_msg=f"column {col}")
            assert np.isnan(got[q[~exists & ~keep], col]).all(), f"column {col} poison"


@pytest.mark.parametrize("n,group", [(32, 32), (30, 30)])
def test_quad_votes(lib, n, group):
    """quad_all/any/ballot over each quad's active lanes; ballot bit i is lane i of the quad."""
    pred = (np.random.default_rng(11).uniform(size=n) < 0.5).astype(np.int32)
    out = torch.zeros((n, 3), dtype=torch.int64).to(torch.uint32)
    lib.quad_votes(pred, out, threads=n, group_size=group)
    got = out.numpy().astype(np.int64)
    for q in partitions(n, group, 4):
        p = pred[q].astype(bool)
        ballot = int(sum(1 << i for i in range(len(q)) if p[i]))
        for t in q:
            assert list(got[t]) == [int(p.all()), int(p.any()), ballot], f"thread {t}"
