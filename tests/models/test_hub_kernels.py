"""Rotary functions made extensible with Hugging Face's `kernels` package, as transformers does to
`apply_rotary_pos_emb` when `kernels` is installed: the module-level name then holds an instance of a parameterless
nn.Module that calls the function, and the attention class keeps a private copy of it that `kernels.kernelize` may
give a Hub kernel. Built here with `kernels` itself, so the check does not depend on a transformers version."""

from types import MethodType

import pytest
import torch
from torch import nn

import mpskernels

kernels = pytest.importorskip("kernels")


@kernels.use_kernel_forward_from_hub("rotary_pos_emb")
def rotate_q_and_k(q, k, cos, sin, unsqueeze_dim=1):
    cos, sin = cos.unsqueeze(unsqueeze_dim), sin.unsqueeze(unsqueeze_dim)
    half = q.shape[-1] // 2
    rotate = lambda x: torch.cat((-x[..., half:], x[..., :half]), dim=-1)  # noqa: E731
    return q * cos + rotate(q) * sin, k * cos + rotate(k) * sin


@kernels.use_kernelized_func(rotate_q_and_k)
class RotaryBlock(nn.Module):
    """Projects q and k and rotates them through the global name, as LlamaAttention does."""

    def __init__(self, dim=64, heads=4):
        super().__init__()
        self.heads, self.q, self.k = heads, nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, x):
        b, s, _ = x.shape
        q, k = (p(x).view(b, s, self.heads, -1).transpose(1, 2) for p in (self.q, self.k))
        angles = torch.arange(s, dtype=x.dtype)[:, None] * 0.1 ** torch.arange(q.shape[-1] // 2, dtype=x.dtype)
        angles = torch.cat((angles, angles), -1)[None]
        q, k = rotate_q_and_k(q, k, angles.cos(), angles.sin())
        return q + k


@pytest.fixture
def emulator():
    with torch.no_grad(), mpskernels.use_backend("emulator"):
        yield


def _count_rope(monkeypatch):
    calls = {"rope": 0}
    real = mpskernels.ops.rope
    monkeypatch.setattr(mpskernels.ops, "rope", lambda *a, **k: (calls.__setitem__("rope", calls["rope"] + 1),
                                                                 real(*a, **k))[1])
    return calls


def test_a_hub_extensible_rotary_function_is_probed_and_routed(emulator, monkeypatch):
    assert isinstance(rotate_q_and_k, nn.Module)  # what the decorator made of the function
    torch.manual_seed(0)
    block, x = RotaryBlock().eval(), torch.randn(2, 7, 64)
    expected = block(x)
    mpskernels.optimize(block, example_inputs=(x,))
    (entry,) = block.mpskernels_report.swapped
    assert entry.kernel == "rope" and entry.detail.startswith("rotate_q_and_k -> rope (routed rope x1"), entry.detail
    calls = _count_rope(monkeypatch)
    torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)
    assert calls == {"rope": 1}


def test_a_rotary_function_given_a_hub_kernel_is_left_alone(emulator, monkeypatch):
    """kernelize() replaces forward on the block's private copy; that kernel, not the probed function, runs for
    the global name inside the block, so optimize() routes nothing and says why."""
    torch.manual_seed(0)
    block, x = RotaryBlock().eval(), torch.randn(2, 7, 64)
    (key, copy_of_rotary), = block._kernel_funcs.items()
    copy_of_rotary.forward = MethodType(lambda self, q, k, cos, sin, unsqueeze_dim=1: (q, k), copy_of_rotary)
    expected = block(x)
    mpskernels.optimize(block, example_inputs=(x,))
    report = block.mpskernels_report
    assert report.swapped == [] and f"rotate_q_and_k runs a kernel set on this module's copy of it " \
        f"(kernels.kernelize: {key})" in report.skipped[0].detail, str(report)
    calls = _count_rope(monkeypatch)
    torch.testing.assert_close(block(x), expected, rtol=0, atol=0)
    assert calls == {"rope": 0}
