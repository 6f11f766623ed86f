"""Conformance: bounds checking inside threadgroup memory. Each deliberately wrong kernel of
threadgroup_bounds.metal must fail with an error naming the kernel, the threadgroup array and the byte offset;
the in-bounds kernel must pass."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from mpskernels.emulator import KernelExecutionError

SOURCE = Path(__file__).parent / "msl" / "threadgroup_bounds.metal"
GROUP = 64


@pytest.fixture(scope="module")
def lib(msl):
    return msl("threadgroup_bounds.metal")


def line_of(marker: str) -> int:
    for number, text in enumerate(SOURCE.read_text().splitlines(), 1):
        if f"MARK: {marker}" in text:
            return number
    raise AssertionError(f"marker {marker} not found")


def declared_at(kernel: str) -> int:
    """Line of the first `threadgroup float` declaration inside `kernel`."""
    lines = SOURCE.read_text().splitlines()
    start = next(i for i, t in enumerate(lines) if f"kernel void {kernel}(" in t)
    return next(i for i in range(start, len(lines)) if lines[i].strip().startswith("threadgroup ")) + 1


def run(lib, kernel: str, groups: int = 2, **kwargs) -> str:
    """The error of `kernel` over `groups` threadgroups; one worker, so threadgroup 0 (even layout) runs first."""
    out = torch.zeros(groups * GROUP)
    with pytest.raises(KernelExecutionError) as info:
        lib.dispatch(kernel, out, threads=groups * GROUP, group_size=GROUP, bounds_check=True, workers=1, **kwargs)
    return str(info.value)


def test_write_one_past_the_end_faults_at_once(lib):
    msg = run(lib, "write_past_end")
    where = f"threadgroup_bounds.metal:{declared_at('write_past_end')}"
    assert re.search(rf"kernel 'write_past_end' .*thread 63\): out-of-bounds access to threadgroup array 'tile' "
                     rf"\(declared at \S*{re.escape(where)}\) at byte offset 256; it holds 256 bytes", msg), msg


def test_read_one_past_the_end_faults_at_once(lib):
    msg = run(lib, "read_past_end")
    assert re.search(r"kernel 'read_past_end' .*thread 63\): out-of-bounds access to threadgroup array 'tile' "
                     r".* at byte offset 256;", msg), msg


def test_write_before_the_start_is_found_at_the_next_barrier(lib):
    msg = run(lib, "write_before_start")
    barrier = f"threadgroup_bounds.metal:{line_of('write_before_start barrier')}"
    assert re.search(r"kernel 'write_before_start' .*out-of-bounds write to threadgroup array 'tile' .* at byte "
                     r"offset -4 \(red zone written at offsets -4\.\.-1\); it holds 256 bytes; found at the "
                     rf"threadgroup_barrier at \S*{re.escape(barrier)}", msg), msg


def test_read_just_before_the_start_faults_in_odd_threadgroups(lib):
    """Threadgroup 0 reads the red zone unnoticed; threadgroup 1 has the array against its leading guard."""
    msg = run(lib, "read_before_start")
    assert re.search(r"kernel 'read_before_start' \(threadgroup 1,0,0, thread 0\): out-of-bounds access to "
                     r"threadgroup array 'tile' .* at byte offset -4; it holds 256 bytes", msg), msg


def test_read_just_before_the_start_is_missed_with_one_threadgroup(lib):
    """A documented miss: with a single threadgroup the array lies against the trailing guard only."""
    out = torch.zeros(GROUP)
    lib.dispatch("read_before_start", out, threads=GROUP, group_size=GROUP, bounds_check=True)
    assert (out[1:] == torch.arange(GROUP - 1, dtype=torch.float32)).all()


def test_overrun_in_an_odd_threadgroup_is_a_red_zone_write(lib):
    """Threadgroup 1 has its array against the leading guard: one past the end is in the red zone after it."""
    msg = run(lib, "write_past_end_in_odd_groups")
    barrier = f"threadgroup_bounds.metal:{line_of('odd barrier')}"
    assert re.search(r"kernel 'write_past_end_in_odd_groups' \(threadgroup 1,0,0\): out-of-bounds write to "
                     r"threadgroup array 'tile' .* at byte offset 256 \(red zone written at offsets 256\.\.259\); "
                     rf"it holds 256 bytes; found at the threadgroup_barrier at \S*{re.escape(barrier)}", msg), msg


def test_read_far_before_the_start_faults(lib):
    msg = run(lib, "read_far_before_start")
    assert re.search(r"kernel 'read_far_before_start' .*thread 0\): out-of-bounds access to threadgroup array "
                     r"'tile' .* at byte offset -4096;", msg), msg


def test_overrun_into_a_neighbouring_array_is_caught(lib):
    msg = run(lib, "overrun_into_neighbour")
    assert re.search(r"kernel 'overrun_into_neighbour' .*thread 0\): out-of-bounds access to threadgroup array 'a' "
                     r".* at byte offset 256;", msg), msg


def test_overrun_without_bounds_checking_lands_in_the_neighbour(lib):
    """What the check is for: in the plain arena the same mistake silently overwrites b[0]."""
    out = torch.zeros(2 * GROUP)
    lib.dispatch("overrun_into_neighbour", out, threads=2 * GROUP, group_size=GROUP, bounds_check=False)
    assert out[0].item() == 5.0 and out[GROUP].item() == 5.0  # a[0] + b[0] = 2 + 3, not 2 + 1
    assert (out[1:GROUP] == 3.0).all()


def test_write_into_alignment_slack_is_found_at_the_end_of_the_threadgroup(lib):
    msg = run(lib, "write_into_slack")
    assert re.search(r"kernel 'write_into_slack' .*out-of-bounds write to threadgroup array 'odd' .* at byte offset "
                     r"20 \(red zone written at offsets 20\.\.23\); it holds 20 bytes; found at the end of the "
                     r"threadgroup", msg), msg


def test_threadgroup_argument_overrun_names_its_index(lib):
    msg = run(lib, "argument_overrun", threadgroup_memory={0: GROUP * 4})
    assert re.search(r"kernel 'argument_overrun' .*thread 63\): out-of-bounds access to \[\[threadgroup\(0\)\]\] "
                     r"'scratch' at byte offset 256; it holds 256 bytes", msg), msg


@pytest.mark.parametrize("order", ["fixed", "shuffled"])
def test_in_bounds_edges_pass_and_compute(lib, order):
    out = torch.full((2 * GROUP,), float("nan"))
    lib.dispatch("edges_in_bounds", out, threads=2 * GROUP, group_size=GROUP, threadgroup_memory={0: GROUP * 4},
                 bounds_check=True, order=order)
    lid = torch.arange(GROUP, dtype=torch.float32)
    want = 3.0 * (GROUP - 1 - lid) + (lid % 5)
    torch.testing.assert_close(out, torch.cat([want, want]), rtol=0, atol=0)
