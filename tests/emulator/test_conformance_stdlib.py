"""Conformance: what Apple's compiler accepts in real headers (MLX, PyTorch), the emulator accepts with the same
meaning -- <metal_stdlib> internals, the exact overload set of namespace metal, half/bfloat as Metal scalars,
multi-component swizzles and brace-initialised vectors. Values are checked against float64 references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mpskernels.msl import MSLCompileError
from mpskernels.msl.preprocess import compiler
from mpskernels.tolerances import tolerance_for


def close(got, want, dtype=torch.float32):
    tol = tolerance_for(dtype)
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64), rtol=tol.rtol, atol=tol.atol)


def run(lib, kernel, inputs, width, n, group=32):
    out = torch.full((n * width,), float("nan"))
    getattr(lib, kernel)(*inputs, out, threads=n, group_size=group)
    return out.numpy().astype(np.float64).reshape(n, width)


def test_stdlib_internals(msl):
    """METAL_FUNC, __metal_* intrinsics with and without the fast-math flag, _disjunction, uniform<T>, os_log,
    remove_addrspace_t, fixed-width integers, atomic_thread_fence, make_filled_simdgroup_matrix<T, 8>."""
    n = 64
    rng = np.random.default_rng(1)
    x = rng.uniform(-2, 2, n).astype(np.float32)
    y = rng.uniform(-3, 3, n).astype(np.float32)
    got = run(msl("stdlib_internals.metal"), "stdlib_internals", (x, y), 8, n)
    xd, yd, gid = x.astype(np.float64), y.astype(np.float64), np.arange(n)
    lane = gid % 32
    close(got[:, 0], np.exp(xd) + np.maximum(xd, yd) + (xd * yd + 1) + np.log2(np.abs(yd) + 1))
    close(got[:, 1], np.repeat(xd.reshape(-1, 32).sum(1), 32))
    close(got[:, 2], np.full(n, 5.0))
    close(got[:, 3], (gid + 3) // 2 + (gid + 3 < 5))
    close(got[:, 4], (250 + gid) % 256)
    close(got[:, 5], 32 + np.where(lane < 31, lane + 1, lane))
    close(got[:, 6], 2 * xd)
    close(got[:, 7], lane + 2.0**-23)


def test_stdlib_overloads(msl):
    """User code defines metal::void_t and bfloat math overloads in metal, fast and precise (as MLX does) without
    colliding; the library has no bfloat overloads of its own (sin(bfloat) is a float); float math accepts integer
    arguments; exp(float4) is component-wise; half converts to bool; user min/max templates do not tie."""
    n = 40
    x = np.random.default_rng(2).uniform(-3, 3, n).astype(np.float32)
    got = run(msl("stdlib_overloads.metal"), "stdlib_overloads", (x,), 11, n)
    b = torch.from_numpy(x).to(torch.bfloat16).double().numpy()
    gid = np.arange(n)
    bf = lambda v: torch.from_numpy(np.asarray(v)).to(torch.bfloat16).double().numpy()  # noqa: E731
    close(got[:, 0], bf(np.exp(b)) + np.abs(b) + bf(np.exp(b)), torch.bfloat16)
    close(got[:, 1], np.log(10) + np.sqrt(gid + 1) + 8)
    xd = x.astype(np.float64)
    close(got[:, 2], np.exp(xd) + 1 + np.e + np.exp(-xd))
    close(got[:, 3], np.full(n, 1.0))
    close(got[:, 4], np.maximum(xd, 0.5) + np.minimum(gid, 3))
    h = torch.from_numpy(x).half().double().numpy()
    close(got[:, 5], np.maximum(h, -1), torch.float16)
    close(got[:, 6], (gid % 3 != 0).astype(np.float64))
    close(got[:, 7], np.minimum(xd, 2) + 1000)
    close(got[:, 8], np.minimum(xd, 0.5) + np.maximum(xd, 0.25))
    close(got[:, 9], np.full(n, 3.0))
    close(got[:, 10], np.sin(b) * 3)  # float precision: the bfloat argument, not the result, is rounded


def test_stdlib_half(msl):
    """half in an anonymous struct inside a union (clang++; g++ refuses it), `cond ? 0 : h` is half, and each
    operation rounds to half."""
    if "clang" not in compiler():
        with pytest.raises(MSLCompileError, match="anonymous aggregate"):
            msl("stdlib_half.metal")
        return
    n = 32
    vals = np.array([1.5, -2.25, 4096, 3000, 0.1, -0.3, 65504, 7] * 4, np.float16)
    got = run(msl("stdlib_half.metal"), "stdlib_half", (torch.from_numpy(vals),), 4, n)
    h, gid = vals.astype(np.float64), np.arange(n)
    close(got[:, 0], h * 2 + 2, torch.float16)  # .y of the union's bits is m = 2
    close(got[:, 1], np.where(gid % 2 == 0, 0, h) + 100)
    one_kept = (h.astype(np.float16) + np.float16(1)).astype(np.float16) - h.astype(np.float16)
    close(got[:, 2], one_kept.astype(np.float64), torch.float16)
    close(got[:, 3], np.where(gid % 2 == 1, 1, torch.from_numpy(vals).bfloat16().double().numpy()), torch.bfloat16)


def test_stdlib_vectors(msl):
    """Swizzles read and written with Metal's meaning, brace initialisers zero the rest, vector type traits."""
    n = 16
    v = np.random.default_rng(3).uniform(1, 9, (n, 4)).astype(np.float32)
    got = run(msl("stdlib_vectors.metal"), "stdlib_vectors", (v,), 16, n, group=16)
    x, y, z, w = (v[:, i].astype(np.float64) for i in range(4))
    gid = np.arange(n)
    close(got[:, 0], x + 10 * y)
    close(got[:, 1], z + 10 * y + 100 * x)
    close(got[:, 2], x + 10 * x + 100 * y + 1000 * y)
    close(got[:, 3], np.full(n, 8.0))
    close(got[:, 4], np.full(n, 7.0))
    close(got[:, 5], z + w + 2)
    close(got[:, 6], y + z)
    hw = torch.from_numpy(v[:, 3]).half().double().numpy()
    hz = torch.from_numpy(v[:, 2]).half().double().numpy()
    close(got[:, 7], hw - hz, torch.float16)
    close(got[:, 8], x * z + y * w + np.sqrt(x * x + y * y + z * z))
    close(got[:, 9], 3 * gid + 3)
    close(got[:, 10], np.full(n, 1.0))
    close(got[:, 11], np.full(n, 1.0))
    close(got[:, 12], x)
    close(got[:, 13], y)
    close(got[:, 14], z + 10 * y)
    close(got[:, 15], np.full(n, 1.0))


def test_stdlib_clang_extensions(msl):
    """An explicit specialisation inside a class and `{ [0 ... 7] = x }` compile with clang++ (Apple's compiler
    is clang) and compute as written; g++ refuses both at their lines."""
    if "clang" not in compiler():
        with pytest.raises(MSLCompileError, match="explicit specialization in non-namespace scope"):
            msl("stdlib_clang.metal")
        return
    n = 20
    out = torch.full((n * 3,), float("nan"))
    msl("stdlib_clang.metal").stdlib_clang(out, threads=n, group_size=4)
    got = out.numpy().astype(np.float64).reshape(n, 3)
    close(got[:, 0], np.full(n, 2.0))
    close(got[:, 1], np.full(n, 7 * 2.5))
    close(got[:, 2], np.full(n, 2.5))


def test_stdlib_half_conversions(msl):
    """half converts as Metal's arithmetic type although the emulator's is a class: `c ? x : y` takes the usual
    arithmetic conversions (half with float is float, with an integer half) and stays an lvalue; half -> uint is
    implicit and truncates; a class with `operator bool` converts on to half and bfloat; a half argument picks
    `f(float)` over `f(Pair)` with Pair constructible from half; `x op= h` computes in x's type or half's; an integer operand is rounded to half or bfloat first."""
    vals = np.array([1.5, 2.25, 4096, 3000, 0.1, 3.75, 65504, 7] * 4, np.float16)
    n = len(vals)
    got = run(msl("stdlib_half_conversions.metal"), "half_conversions", (torch.from_numpy(vals),), 12, n)
    h, odd = vals.astype(np.float64), np.arange(n) % 2 == 1
    f32 = lambda v: np.asarray(v, np.float64).astype(np.float32).astype(np.float64)  # noqa: E731
    # float(1/3) is not a half: exact float32 comparison for the odd lanes
    np.testing.assert_array_equal(got[:, 0], f32(np.where(odd, f32(1 / 3), h) + 100))
    np.testing.assert_array_equal(got[:, 1], np.where(odd, h, 1) + 100)
    np.testing.assert_array_equal(got[:, 2], np.where(odd, 7 + 10 * -h, h + 70))
    np.testing.assert_array_equal(got[:, 3], np.trunc(h) - 1000 * np.trunc(h))
    np.testing.assert_array_equal(got[:, 4], np.full(n, 11.0))
    np.testing.assert_array_equal(got[:, 5], f32(h / 3))  # float division: 7/3 is 2.3333333, not half's 2.334
    np.testing.assert_array_equal(got[:, 6], np.where(odd, -1, h))
    np.testing.assert_array_equal(got[:, 7], f32(h + np.where(odd, h, 0.5)))
    np.testing.assert_array_equal(got[:, 8], f32(f32(1 / 3) + h))
    np.testing.assert_array_equal(got[:, 9], np.trunc((np.float16(3001) + np.where(vals < 60000, vals, np.float16(1))).astype(np.float64)))
    bf = lambda v: torch.tensor(v, dtype=torch.float64).bfloat16().double().numpy()  # noqa: E731
    np.testing.assert_array_equal(got[:, 10], np.full(n, bf(1 + bf(257))))
    np.testing.assert_array_equal(got[:, 11], np.full(n, 11.0 if np.float16(3001) == 3000 else 0.0))


def test_conditional_threadgroup_bound(msl):
    """`threadgroup float tile[wide ? 64 : 32];` in a kernel template: the conditional is left to C++ there."""
    out = torch.zeros(32)
    msl("stdlib_half_conversions.metal").conditional_bound_wide(out, threads=32, group_size=32)
    assert (out == 64).all()
