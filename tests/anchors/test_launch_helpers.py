"""The launch helpers anchor ops share: threadgroup dispatches, Metal's uint vectors, views bound as buffers."""

import struct

import pytest
import torch

from mpskernels.anchors.launch import in_order, span, threadgroups, uint_vector


def test_threadgroups_become_total_threads():
    assert threadgroups((6, 3, 32), (256, 1, 1)) == {"threads": (1536, 3, 32), "group_size": (256, 1, 1)}
    with pytest.raises(ValueError):
        threadgroups((6, 3), (256, 1, 1))


def test_a_uint3_takes_sixteen_bytes_like_metal_s():
    assert uint_vector(1, 2, 3) == struct.pack("<4I", 1, 2, 3, 0)
    assert uint_vector(1, 2, 3, 4) == struct.pack("<4I", 1, 2, 3, 4)
    assert uint_vector(7, 8) == struct.pack("<2I", 7, 8)
    with pytest.raises(ValueError, match="32-bit"):
        uint_vector(2**32, 0, 0)


def test_a_view_is_bound_where_it_lies():
    cache = torch.arange(2 * 3 * 10 * 4, dtype=torch.float32).reshape(2, 3, 10, 4)
    view = cache[:, :, 2:7]
    buf = span(view)
    assert buf.is_contiguous() and buf.data_ptr() == view.data_ptr()
    last = view[-1, -1, -1, -1]
    assert buf[-1] == last  # the buffer ends at the view's last element
    mask = torch.ones(5, 10, dtype=torch.bool).expand(2, 3, 5, 10)  # broadcast: stride 0 over batch and heads
    assert span(mask).numel() == 50
    contiguous = torch.zeros(3, 4)
    assert span(contiguous) is contiguous


def test_in_order_runs_each_launch_once_in_turn():
    seen = []
    in_order(lambda: seen.append(1), lambda: seen.append(2))()
    assert seen == [1, 2]
