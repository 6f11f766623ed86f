"""Issue 15: a rotary-embedding module with its own forward(q, k) (optimize/rotary_module.py). It is swapped for
ops.rope with tables read off its forward; the oracles are a float64 rotary written from its definition (RoFormer:
each pair (x_i, x_j) rotated by the angle position * inv_freq) and the module's own forward on a pristine copy."""

import copy
import io

import pytest
import torch
from torch import nn

import mpskernels
from mpskernels import launches
from mpskernels.optimize import optimize, swapped_modules

D = 16


def inv_freq(dim: int) -> torch.Tensor:
    return 1.0 / 10000.0 ** (torch.arange(0, dim, 2).float() / dim)


def rotate_half(x):
    a, b = x.chunk(2, -1)
    return torch.cat((-b, a), -1)


def rotate_every_two(x):
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack((-b, a), -1).flatten(-2)


class NeoxRotary(nn.Module):  # the tables made in every call from inv_freq; half-split pairs (i, i + D/2)
    def __init__(self, dim=D):
        super().__init__()
        self.register_buffer("inv_freq", inv_freq(dim), persistent=False)

    def forward(self, q, k):
        f = torch.outer(torch.arange(q.shape[-2], dtype=torch.float32), self.inv_freq)
        emb = torch.cat((f, f), -1)
        cos, sin = emb.cos().to(q.dtype), emb.sin().to(q.dtype)
        return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


class GPTJRotary(nn.Module):  # interleaved pairs (2i, 2i + 1); the head dim as an attribute
    def __init__(self, dim=D):
        super().__init__()
        self.dim = dim

    def forward(self, query, key):
        f = torch.outer(torch.arange(query.shape[2], dtype=torch.float32), inv_freq(self.dim))
        cos, sin = f.cos().repeat_interleave(2, -1), f.sin().repeat_interleave(2, -1)
        return query * cos + rotate_every_two(query) * sin, key * cos + rotate_every_two(key) * sin


class OffsetRotary(NeoxRotary):  # decoding: positions start at an offset the caller passes
    def forward(self, q, k, offset=0):
        f = torch.outer(torch.arange(offset, offset + q.shape[-2], dtype=torch.float32), self.inv_freq)
        emb = torch.cat((f, f), -1)
        return q * emb.cos() + rotate_half(q) * emb.sin(), k * emb.cos() + rotate_half(k) * emb.sin()


class SeqSecondRotary(NeoxRotary):  # [batch, seq, heads, dim]: not the layout ops.rope takes
    def forward(self, q, k):
        f = torch.outer(torch.arange(q.shape[1], dtype=torch.float32), self.inv_freq)
        emb = torch.cat((f, f), -1)[:, None]
        return q * emb.cos() + rotate_half(q) * emb.sin(), k * emb.cos() + rotate_half(k) * emb.sin()


class ScaleBoth(nn.Module):  # two tensors in, two out, but no rotation
    def __init__(self):
        super().__init__()
        self.register_buffer("inv_freq", inv_freq(D))

    def forward(self, q, k):
        return q * 2, k


class Attention(nn.Module):
    def __init__(self, rotary):
        super().__init__()
        self.rot = rotary

    def forward(self, q, k):
        q, k = self.rot(q, k)
        return q.sum(1) @ k.sum(1).transpose(-1, -2)  # grouped heads: q has more than k


def rotary64(x: torch.Tensor, interleaved: bool) -> torch.Tensor:
    """Each pair rotated by position * inv_freq, in float64, from the definition."""
    x = x.double()
    angle = torch.arange(x.shape[2], dtype=torch.float64)[:, None] * inv_freq(x.shape[3]).double()
    cos, sin = angle.cos(), angle.sin()
    if interleaved:
        a, b = x[..., 0::2], x[..., 1::2]
        return torch.stack((a * cos - b * sin, b * cos + a * sin), -1).flatten(-2)
    a, b = x.chunk(2, -1)
    return torch.cat((a * cos - b * sin, b * cos + a * sin), -1)


def qk(seed=0, b=2, hq=4, hk=2, s=7, d=D, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, hq, s, d, generator=g).to(dtype), torch.randn(b, hk, s, d, generator=g).to(dtype)


@pytest.fixture
def emulator():
    with mpskernels.use_backend("emulator"), torch.no_grad():
        yield


@pytest.mark.parametrize("make, interleaved", [(NeoxRotary, False), (GPTJRotary, True)])
def test_rotary_modules_are_swapped_for_rope(emulator, make, interleaved):
    model = Attention(make()).eval()
    q, k = qk()
    pristine = copy.deepcopy(model)
    optimize(model, example_inputs=(q, k))
    assert swapped_modules(model) == {"rot": "rope"}, str(model.mpskernels_report)
    entry = next(e for e in model.mpskernels_report.entries if e.module == "rot")
    assert ("interleaved" if interleaved else "half-split") in entry.detail
    for s in (1, 5, 12):  # sequence lengths it was not optimised on read their own tables
        q, k = qk(seed=s, s=s)
        start = launches.count()
        got_q, got_k = model.rot(q, k)
        assert launches.count() - start == 1
        torch.testing.assert_close(got_q.double(), rotary64(q, interleaved), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got_k.double(), rotary64(k, interleaved), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(model(q, k), pristine(q, k), rtol=1e-5, atol=1e-4)


def test_half_precision_calls_match_the_module(emulator):
    model = Attention(NeoxRotary()).eval()
    optimize(model, example_inputs=qk())
    pristine = NeoxRotary()
    for dtype in (torch.float16, torch.bfloat16):
        q, k = qk(seed=3, dtype=dtype)
        got, want = model.rot(q, k), pristine(q, k)
        assert got[0].dtype == dtype
        for a, w, x in zip(got, want, (q, k)):
            tol = 2e-2 if dtype == torch.bfloat16 else 4e-3
            torch.testing.assert_close(a.float(), w.float(), rtol=tol, atol=tol)
            torch.testing.assert_close(a.double(), rotary64(x, False), rtol=tol, atol=tol)


def test_calls_the_kernel_does_not_take_run_the_module(emulator):
    model = Attention(OffsetRotary()).eval()
    optimize(model, example_inputs=qk())
    assert swapped_modules(model) == {"rot": "rope"}
    pristine = OffsetRotary()
    q, k = qk(seed=1)
    start = launches.count()
    for got, want in zip(model.rot(q, k, offset=5), pristine(q, k, offset=5)):
        torch.testing.assert_close(got, want)
    assert launches.count() == start  # an offset: the module's own forward
    q_long, k_short = qk(seed=2, s=6)[0], qk(seed=2, s=4)[1]
    with pytest.raises(RuntimeError):  # different sequence lengths: the module's own error, not a kernel's
        model.rot(q_long, k_short)


@pytest.mark.parametrize("make, status, said", [
    (SeqSecondRotary, "not recognised", "nothing recognised"),  # its output is not shaped like (q, k) in our layout
    (ScaleBoth, "skipped", "computes none of rope")])  # shaped like (q, k), but probing finds no rotation
def test_modules_that_are_not_this_rotary_are_left_alone(emulator, make, status, said):
    model = Attention(make()).eval()
    q, k = qk()
    if make is SeqSecondRotary:
        q, k = q.transpose(1, 2).contiguous(), k.transpose(1, 2).contiguous()
        model.forward = lambda q, k: model.rot(q, k)[0]
    optimize(model, example_inputs=(q, k))
    assert "rot" not in swapped_modules(model)
    entry = next(e for e in model.mpskernels_report.entries if e.module == "rot")
    assert entry.status == status and said in entry.detail, entry


def test_tables_follow_the_modules_buffers(emulator):
    model = Attention(NeoxRotary()).eval()
    optimize(model, example_inputs=qk())
    q, k = qk(seed=4)
    before = model.rot(q, k)[0]
    model.rot.inv_freq.mul_(0.5)  # e.g. a context-length rescale applied in place
    pristine = NeoxRotary()
    pristine.inv_freq.mul_(0.5)
    after = model.rot(q, k)[0]
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, pristine(q, k)[0], rtol=1e-5, atol=1e-5)


def test_survives_deepcopy_and_torch_save(emulator):
    model = Attention(GPTJRotary()).eval()
    optimize(model, example_inputs=qk())
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    for copied in (copy.deepcopy(model), torch.load(buffer, weights_only=False)):
        assert swapped_modules(copied) == {"rot": "rope"}
        q, k = qk(seed=6)
        start = launches.count()
        got = copied.rot(q, k)
        assert launches.count() - start == 1
        torch.testing.assert_close(got[0].double(), rotary64(q, True), rtol=1e-5, atol=1e-5)


def test_gradients_flow_through_the_swapped_rotary():
    model = Attention(NeoxRotary()).eval()
    with mpskernels.use_backend("emulator"):
        with torch.no_grad():
            optimize(model, example_inputs=qk())
        grads = []
        for m in (model, Attention(NeoxRotary())):
            q, k = (t.requires_grad_() for t in qk(seed=7))
            m(q, k).square().sum().backward()
            grads.append((q.grad, k.grad))
    for got, want in zip(*grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_buffers_made_under_inference_mode_are_read_every_call(emulator):
    with torch.inference_mode():
        model = Attention(NeoxRotary()).eval()  # inference tensors: no version counter to see a change
        optimize(model, example_inputs=qk())
        q, k = qk(seed=8)
        before = model.rot(q, k)[0]
        model.rot.inv_freq.mul_(0.5)
        pristine = NeoxRotary()
        pristine.inv_freq.mul_(0.5)
        after = model.rot(q, k)[0]
    assert swapped_modules(model) == {"rot": "rope"} and not torch.allclose(before, after)
    torch.testing.assert_close(after, pristine(q, k)[0], rtol=1e-5, atol=1e-5)
