"""MLX's softmax, logsumexp and log_softmax chain on the emulator, against PyTorch and float64: the block kernel
with full and tail chunks (rows that are not a multiple of 4 elements, nor of 128), and the looped kernel."""

import pytest
import torch

from .mlx_check import check, dtypes, randn, run

# (rows, row length): one element; a tail inside the last SIMD group; several SIMD groups; a whole 1024-thread
# block; past 4096 the looped kernel, with a tail.
BLOCK = [(3, 1), (2, 37), (2, 130), (1, 4096)]
LOOPED = [(2, 4097 + 6)]
# MLX's default softmax accumulates half and bfloat in their own type (exp, the row sum and its reciprocal each
# rounded to it): a few units in the last place beyond a float accumulation, by design (precise=True is the fix).
IN_TYPE_ULPS = 8.0


def ulps(dtype, precise=False):
    return 0.0 if precise or dtype == torch.float32 else IN_TYPE_ULPS


@dtypes
@pytest.mark.parametrize("rows, cols", BLOCK + LOOPED)
def test_softmax(dtype, rows, cols):
    x = randn(rows, cols, seed=cols, dtype=dtype, scale=3)
    out, kernels = run("mlx.softmax", x)
    assert kernels[0].startswith("looped_" if cols > 4096 else "block_")
    check(out, torch.softmax(x.double(), -1), torch.softmax(x, -1), f"softmax {rows}x{cols}", ulps(dtype))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("rows, cols", [(2, 130), (1, 4100)])
def test_precise_softmax(dtype, rows, cols):
    x = randn(rows, cols, seed=1, dtype=dtype, scale=3)
    out, kernels = run("mlx.softmax", x, precise=True)
    assert "_precise_" in kernels[0]
    check(out, torch.softmax(x.double(), -1), torch.softmax(x, -1), "precise softmax")


@dtypes
@pytest.mark.parametrize("rows, cols", [(3, 37), (1, 4103)])
def test_logsumexp(dtype, rows, cols):
    x = randn(rows, cols, seed=2, dtype=dtype, scale=3)
    out, _ = run("mlx.logsumexp", x)
    check(out, torch.logsumexp(x.double(), -1, keepdim=True), torch.logsumexp(x, -1, keepdim=True), "logsumexp")


@dtypes
def test_log_softmax_chain(dtype):
    x = randn(2, 3, 45, seed=3, dtype=dtype, scale=3)
    out, kernels = run("mlx.log_softmax", x)
    assert kernels[1].startswith("g2_Subtract")
    check(out, torch.log_softmax(x.double(), -1), torch.log_softmax(x, -1), "log_softmax")


def test_softmax_refuses_a_strided_input():
    with pytest.raises(ValueError, match="contiguous"):
        run("mlx.softmax", randn(8, 6).t())
