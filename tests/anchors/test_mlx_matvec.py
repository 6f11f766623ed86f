"""MLX's affine 4-bit qmv and its gemv/gemv_t on the emulator, against PyTorch and float64, with the tiles and
variants MLX's host picks (fast and guarded qmv; gemv tiles for short inputs, few outputs, long inputs)."""

import pytest
import torch

from mpskernels.anchors.mlx.quantized import GROUP_SIZE, pack

from .mlx_check import check, dtypes, randn, run


def quantized_weights(n, k, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randint(0, 16, (n, k), generator=g)
    scales = (torch.rand(n, k // GROUP_SIZE, generator=g, dtype=torch.float64) * 0.1 + 0.01).to(dtype)
    biases = (torch.randn(n, k // GROUP_SIZE, generator=g, dtype=torch.float64) * 0.5).to(dtype)
    w = q.double() * scales.double().repeat_interleave(GROUP_SIZE, 1) + biases.double().repeat_interleave(GROUP_SIZE, 1)
    return pack(q), scales, biases, w


@dtypes
@pytest.mark.parametrize("n, k, fast", [(16, 512, True), (12, 512, False), (8, 576, False), (3, 1024, False)])
def test_affine_qmv(dtype, n, k, fast):
    words, scales, biases, w = quantized_weights(n, k, dtype, seed=n + k)
    x = randn(1, k, seed=k, dtype=dtype)
    out, kernels = run("mlx.affine_qmv", x, words, scales, biases)
    assert ("_qmv_fast_" in kernels[0]) == fast
    check(out, x.double() @ w.t(), x @ w.to(dtype).t(), "affine_qmv")


@dtypes
@pytest.mark.parametrize("k, n", [(100, 33), (64, 20), (1024, 3), (130, 4100)])
def test_gemv(dtype, k, n):
    x, w = randn(1, k, seed=k, dtype=dtype), randn(n, k, seed=n, dtype=dtype)
    out, _ = run("mlx.gemv", x, w)
    check(out, x.double() @ w.double().t(), x @ w.t(), "gemv")


@dtypes
@pytest.mark.parametrize("k, n", [(100, 600), (100, 3), (50, 40)])
def test_gemv_t(dtype, k, n):
    x, w = randn(k, seed=k, dtype=dtype), randn(k, n, seed=n, dtype=dtype)
    out, _ = run("mlx.gemv_t", x, w)
    check(out, x.double() @ w.double(), x @ w, "gemv_t")
