"""Conformance: atomics under contention, on device memory across threadgroups (several OS threads) and on
threadgroup memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def lib(msl):
    return msl("atomics.metal")


def u32(n, fill=0):
    return torch.full((n,), fill, dtype=torch.int64).to(torch.uint32)


@pytest.mark.parametrize("workers", [None, 4])
def test_device_fetch_add_histogram(lib, workers):
    """atomic_fetch_add on device memory from 96 threadgroups loses no update; tickets are a permutation of 0..n-1."""
    n, nbins = 96 * 256, 7
    x = np.random.default_rng(0).integers(0, 1000, n).astype(np.uint32)
    bins, counter, tickets = u32(nbins), u32(1), u32(n, 0xFFFFFFFF)
    lib.device_histogram(x, bins, counter, tickets, nbins, threads=n, group_size=256, workers=workers)
    np.testing.assert_array_equal(bins.numpy(), np.bincount(x % nbins, minlength=nbins))
    assert counter.item() == n
    np.testing.assert_array_equal(np.sort(tickets.numpy()), np.arange(n))


@pytest.mark.parametrize("n,group", [(4096, 256), (1000, 96), (33, 33)])
def test_threadgroup_atomic_histogram(lib, n, group):
    """Threadgroup atomic_uint counters (initialised with atomic_store) merged into device bins."""
    x = np.random.default_rng(1).integers(0, 1 << 20, n).astype(np.uint32)
    bins = u32(16)
    lib.threadgroup_histogram(x, bins, threads=n, group_size=group)
    np.testing.assert_array_equal(bins.numpy(), np.bincount(x % 16, minlength=16))


def test_fetch_min_max_sub(lib):
    """atomic_fetch_min/max/sub on device int from many threadgroups give the exact global min, max and sum."""
    n = 20000
    x = np.random.default_rng(2).integers(-(10**6), 10**6, n).astype(np.int32)
    mn = torch.tensor([2**31 - 1], dtype=torch.int32)
    mx = torch.tensor([-(2**31)], dtype=torch.int32)
    down = torch.tensor([0], dtype=torch.int32)
    lib.min_max_sub(x, mn, mx, down, threads=n, group_size=128)
    assert (mn.item(), mx.item(), down.item()) == (x.min(), x.max(), -x.astype(np.int64).sum())


def test_compare_exchange_loops(lib):
    """atomic_compare_exchange_weak updates `expected` on failure: a CAS float-max and CAS slot claims are exact."""
    n = 16384
    x = np.random.default_rng(3).standard_normal(n).astype(np.float32)
    max_bits = torch.tensor([np.float32(-np.inf).view(np.uint32)], dtype=torch.int64).to(torch.uint32)
    next_slot = torch.zeros(1, dtype=torch.int32)
    slots = torch.full((n,), -1, dtype=torch.int32)
    lib.cas_patterns(x, max_bits, next_slot, slots, threads=n, group_size=64, workers=4)
    assert max_bits.numpy().view(np.float32)[0] == x.max()
    assert next_slot.item() == n
    np.testing.assert_array_equal(np.sort(slots.numpy()), np.arange(n))


def test_float_atomic_add_and_exchange(lib):
    """atomic_fetch_add on atomic_float sums exactly (dyadic inputs); atomic_exchange hands each value on once."""
    n = 20000
    x = (np.random.default_rng(4).integers(-64, 64, n) / 8).astype(np.float32)  # every partial sum is exact
    acc = torch.zeros(1)
    last = u32(1, 0xFFFFFFFF)
    seen = u32(n)
    lib.float_add_exchange(x, acc, last, seen, threads=n, group_size=100)
    assert acc.item() == x.astype(np.float64).sum()
    # Exchange forms a chain: the initial value and all thread ids but the final survivor were each seen once.
    values = np.concatenate([seen.numpy().astype(np.int64), [int(last.item())]])
    np.testing.assert_array_equal(np.sort(values), np.concatenate([np.arange(n), [0xFFFFFFFF]]))


def test_bitwise_atomics(lib):
    """fetch_or/and/xor: every bit set, every bit cleared, and each bit flipped an odd/even number of times."""
    words = torch.tensor([0, 0xFFFFFFFF, 0], dtype=torch.int64).to(torch.uint32)
    n = 32 * 7 + 5  # bits 0..4 are flipped 8 times, bits 5..31 7 times
    lib.bit_atomics(words, threads=n, group_size=16)
    assert words.tolist() == [0xFFFFFFFF, 0, 0xFFFFFFE0]


@pytest.mark.parametrize("n,group", [(1024, 256), (100, 33)])
def test_threadgroup_float_atomic_add(lib, n, group):
    """atomic_float in threadgroup memory accumulates each group's values."""
    x = (np.random.default_rng(5).integers(-100, 100, n) / 4).astype(np.float32)
    groups = -(-n // group)
    out = torch.full((groups,), float("nan"))
    lib.threadgroup_float_sum(x, out, threads=n, group_size=group)
    want = [x[i * group : (i + 1) * group].astype(np.float64).sum() for i in range(groups)]
    np.testing.assert_array_equal(out.numpy(), want)
