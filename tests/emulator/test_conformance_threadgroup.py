"""Conformance: threadgroup memory (poison, [[threadgroup(n)]], 32 KiB limit), barriers and their misuse, divergent
collectives and the threadgroup size limit."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from mpskernels.emulator import DispatchError, KernelExecutionError

SOURCE = Path(__file__).parent / "msl" / "threadgroup.metal"


@pytest.fixture(scope="module")
def lib(msl):
    return msl("threadgroup.metal")


def line_of(marker: str) -> int:
    """1-based line of the .metal source that carries `marker` in a comment."""
    for number, text in enumerate(SOURCE.read_text().splitlines(), 1):
        if marker in text:
            return number
    raise AssertionError(f"marker {marker} not found")


def test_threadgroup_memory_is_poisoned_at_group_start(lib):
    """Uninitialised threadgroup memory reads as NaN (float) / -1 (int) in every group, not the last group's data."""
    n, group = 8 * 64, 64
    out = torch.zeros(n)
    iout = torch.zeros(n, dtype=torch.int32)
    lib.read_uninitialised(out, iout, threads=n, group_size=group, workers=1)  # all groups reuse one worker's arena
    assert out.isnan().all()
    assert (iout == -1).all()


@pytest.mark.parametrize("n,group", [(256, 64), (100, 100), (33, 16), (1, 1)])
def test_threadgroup_argument_sized_at_dispatch(lib, n, group):
    """[[threadgroup(0)]] and [[threadgroup(1)]] arguments get their own storage of the size given at dispatch."""
    x = torch.from_numpy(np.random.default_rng(n).integers(-50, 50, n).astype(np.float32))
    groups = -(-n // group)
    out = torch.full((groups, 2), float("nan"))
    nbytes = -(-group * 4 // 16) * 16
    lib.block_sum_dynamic(x, out, threads=n, group_size=group, threadgroup_memory={0: nbytes, 1: nbytes})
    want = [x[i * group : (i + 1) * group].sum().item() for i in range(groups)]
    np.testing.assert_array_equal(out[:, 0].numpy(), want)
    np.testing.assert_array_equal(out[:, 1].numpy(), 1.0)


def test_threadgroup_argument_size_is_required(lib):
    """Dispatching a kernel with a [[threadgroup(n)]] argument without its size is a DispatchError."""
    with pytest.raises(DispatchError, match=r"threadgroup\(0\)"):
        lib.dynamic_only(torch.zeros(4), threads=4, group_size=4)


def test_declared_40k_threadgroup_memory_fails(lib):
    """A kernel declaring 40 KiB of threadgroup memory fails with an error that names the 32 KiB limit."""
    with pytest.raises(KernelExecutionError, match="32 KiB") as info:
        lib.too_much_threadgroup_memory(torch.zeros(64), threads=64, group_size=64)
    assert "too_much_threadgroup_memory" in str(info.value)
    assert f"threadgroup.metal:{line_of('BIG_DECL')}:" in str(info.value)


def test_static_plus_dynamic_threadgroup_memory_limit(lib):
    """20 KiB declared + 16 KiB [[threadgroup(0)]] exceeds 32 KiB; 20 KiB + 8 KiB fits and runs."""
    out = torch.full((32,), float("nan"))
    lib.static_plus_dynamic(out, threads=32, group_size=32, threadgroup_memory={0: 8192})
    assert (out == 5).all()
    with pytest.raises(KernelExecutionError, match="32 KiB"):
        lib.static_plus_dynamic(out, threads=32, group_size=32, threadgroup_memory={0: 16384})


def test_dynamic_threadgroup_memory_alone_over_limit(lib):
    """A 40 KiB [[threadgroup(0)]] argument alone exceeds 32 KiB and fails (32 KiB exactly is fine)."""
    out = torch.full((64,), float("nan"))
    lib.dynamic_only(out, threads=64, group_size=64, threadgroup_memory={0: 32768})
    np.testing.assert_array_equal(out.numpy(), np.arange(63, -1, -1))
    with pytest.raises(KernelExecutionError, match="32 KiB") as info:
        lib.dynamic_only(out, threads=64, group_size=64, threadgroup_memory={0: 40960})
    assert "dynamic_only" in str(info.value)


@pytest.mark.parametrize("n,group", [(256, 256), (200, 64)])
def test_shuffled_order_exposes_missing_barrier(lib, n, group):
    """A missing barrier passes in fixed order but fails under order="shuffled"; with it, every seed passes."""
    x = torch.arange(n, dtype=torch.float32) + 1
    want = torch.zeros(n)
    for start in range(0, n, group):
        stop = min(start + group, n)
        want[start : stop - 1] = x[start + 1 : stop]

    def run(kernel, **kw):
        out = torch.full((n,), float("nan"))
        lib.dispatch(kernel, x, out, threads=n, group_size=group, **kw)
        return out

    assert torch.equal(run("shift_racy", order="fixed"), want)
    wrong = [not torch.equal(run("shift_racy", order="shuffled", seed=s), want) for s in range(3)]
    assert any(wrong), "the shuffled order never exposed the missing barrier"
    for s in range(3):
        assert torch.equal(run("shift_synced", order="shuffled", seed=s), want)


def test_barrier_deadlock_is_reported_not_hung(lib, no_hang):
    """Threads at two different barriers raise KernelExecutionError naming the kernel and the .metal line."""
    out = torch.zeros(64)
    error = no_hang(lambda: lib.barrier_deadlock(out, threads=64, group_size=64))
    assert isinstance(error, KernelExecutionError), repr(error)
    text = str(error)
    assert "barrier_deadlock" in text
    assert re.search(rf"threadgroup\.metal:({line_of('DEADLOCK_A')}|{line_of('DEADLOCK_B')})\b", text), text


def test_divergent_collective_is_reported(lib, no_hang):
    """Lanes of one SIMD group waiting at two different simd_sum call sites raise KernelExecutionError."""
    out = torch.zeros(32)
    error = no_hang(lambda: lib.divergent_collective(torch.ones(32), out, threads=32, group_size=32))
    assert isinstance(error, KernelExecutionError), repr(error)
    text = str(error)
    assert "divergent" in text and "divergent_collective" in text
    assert re.search(rf"threadgroup\.metal:({line_of('DIVERGENT_A')}|{line_of('DIVERGENT_B')})\b", text), text


@pytest.mark.parametrize("group", [(1025,), (32, 33), (16, 16, 5)])
def test_more_than_1024_threads_per_group_is_rejected(lib, group):
    """A threadgroup of more than 1024 threads is a DispatchError, before anything runs."""
    with pytest.raises(DispatchError, match="1024"):
        lib.read_uninitialised(torch.zeros(2048), torch.zeros(2048, dtype=torch.int32), threads=2048, group_size=group)


def test_max_total_threads_per_threadgroup_attribute(lib):
    """[[max_total_threads_per_threadgroup(64)]] lowers the limit: 64 runs, 65 is a DispatchError."""
    out = torch.zeros(128)
    lib.limited_group(out, threads=128, group_size=64)
    assert (out == 1).all()
    with pytest.raises(DispatchError, match="64"):
        lib.limited_group(out, threads=128, group_size=65)


@pytest.mark.parametrize("n,group", [(100, 64), (33, 32), (5, 128)])
def test_early_return_before_barrier(lib, n, group):
    """Threads returning before a barrier (bounds check) count as arrived and do not block the others."""
    x = torch.arange(n, dtype=torch.float32)
    out = torch.full((n + 40,), float("nan"))
    grid = -(-n // group) * group + (group if n < group else 0)
    lib.early_return_then_barrier(x, out, n, threads=grid, group_size=group, order="shuffled")
    want = np.concatenate([x.numpy()[s : s + group][::-1] for s in range(0, n, group)])
    np.testing.assert_array_equal(out.numpy()[:n], want)
    assert out[n:].isnan().all()


@pytest.mark.parametrize("gw,gh", [(1, 1), (3, 2)])
def test_two_dimensional_threadgroup_arrays(lib, gw, gh):
    """`threadgroup float tile[8][9], a[8], b[8];` declares three separate arrays; a 2-D tile transposes."""
    W, H = gw * 8, gh * 8
    x = torch.from_numpy(np.random.default_rng(W + H).integers(-9, 9, (H, W)).astype(np.float32))
    out = torch.full((W, H), float("nan"))
    sums = torch.full((gh, gw, 2), float("nan"))
    lib.transpose_tile(x, out, sums, threads=(W, H), group_size=(8, 8))
    torch.testing.assert_close(out, x.t(), rtol=0, atol=0)
    block = x.view(gh, 8, gw, 8).sum((1, 3))
    torch.testing.assert_close(sums[..., 0], block, rtol=0, atol=0)
    torch.testing.assert_close(sums[..., 1], block, rtol=0, atol=0)


@pytest.mark.parametrize("order", ["fixed", "shuffled"])
def test_simdgroup_barrier_orders_simd_group(lib, order):
    """simdgroup_barrier makes a neighbour's threadgroup write visible within the SIMD group in any lane order."""
    x = torch.arange(96, dtype=torch.float32)
    out = torch.full((96,), float("nan"))
    lib.simdgroup_barrier_exchange(x, out, threads=96, group_size=96, order=order, seed=3)
    torch.testing.assert_close(out, x[torch.arange(96) ^ 1], rtol=0, atol=0)
