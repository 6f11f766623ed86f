"""MLX's attention kernels on the emulator against PyTorch's scaled_dot_product_attention and float64: decode in
one pass and in two passes (and the GQA first pass), prefill with aligned and unaligned tiles, causal and masked.
MLX's causal mask is aligned to the end of the keys (a query sees the keys up to its own position in the cache)."""

import pytest
import torch
import torch.nn.functional as F

from .mlx_check import check, dtypes, randn, run


def inputs(b, hq, hkv, lq, n, d, dtype, seed=0):
    return (randn(b, hq, lq, d, seed=seed, dtype=dtype), randn(b, hkv, n, d, seed=seed + 1, dtype=dtype),
            randn(b, hkv, n, d, seed=seed + 2, dtype=dtype))


def causal_mask(lq, n):
    """Bottom-right aligned: query i sees keys j <= i + (n - lq)."""
    return torch.arange(n)[None, :] <= torch.arange(lq)[:, None] + (n - lq)


def expected(q, k, v, mask=None, causal=False):
    """(float64 value, PyTorch's SDPA in the inputs' dtype)."""
    if causal:
        mask = causal_mask(q.shape[2], k.shape[2])
    rep = q.shape[1] // k.shape[1]
    q64, k64, v64 = q.double(), k.double().repeat_interleave(rep, 1), v.double().repeat_interleave(rep, 1)
    m64 = None if mask is None or mask.dtype == torch.bool else mask.double()
    want = F.scaled_dot_product_attention(q64, k64, v64, attn_mask=mask if m64 is None else m64)
    got = F.scaled_dot_product_attention(q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1), attn_mask=mask)
    return want, got


@dtypes
@pytest.mark.parametrize("d", [64, 128])
def test_sdpa_vector(dtype, d):
    q, k, v = inputs(2, 4, 2, 1, 67, d, dtype)
    out, kernels = run("mlx.sdpa_vector", q, k, v)
    assert kernels[0].startswith("sdpa_vector_") and kernels[0].endswith(f"_{d}_{d}")
    check(out, *expected(q, k, v), "sdpa_vector")


@dtypes
def test_sdpa_vector_masks_and_causal(dtype):
    q, k, v = inputs(1, 4, 4, 3, 45, 64, dtype, seed=3)
    keep = torch.rand(1, 4, 3, 45, generator=torch.Generator().manual_seed(4)) > 0.3
    keep[..., 0] = True
    out, _ = run("mlx.sdpa_vector", q, k, v, mask=keep)
    check(out, *expected(q, k, v, mask=keep), "sdpa_vector bool mask")
    additive = randn(3, 45, seed=5, dtype=dtype)
    out, _ = run("mlx.sdpa_vector", q, k, v, mask=additive)
    check(out, *expected(q, k, v, mask=additive), "sdpa_vector additive mask")
    out, _ = run("mlx.sdpa_vector", q, k, v, causal=True)
    check(out, *expected(q, k, v, causal=True), "sdpa_vector causal")


def test_sdpa_vector_reads_a_kv_cache_slice():
    q, _, _ = inputs(1, 2, 2, 1, 1, 64, torch.float32)
    cache_k, cache_v = randn(1, 2, 100, 64, seed=6), randn(1, 2, 100, 64, seed=7)
    k, v = cache_k[:, :, :70], cache_v[:, :, :70]
    out, _ = run("mlx.sdpa_vector", q, k, v)
    check(out, *expected(q, k, v), "sdpa_vector on a cache slice")


@dtypes
@pytest.mark.parametrize("d", [64, 128])
def test_sdpa_vector_2pass(dtype, d):
    q, k, v = inputs(1, 4, 2, 2, 200, d, dtype, seed=8)  # 64 blocks: some hold 4 keys, some 3
    out, kernels = run("mlx.sdpa_vector_2pass", q, k, v)
    assert kernels[0].startswith("sdpa_vector_2pass_1_") and kernels[1].startswith("sdpa_vector_2pass_2_")
    check(out, *expected(q, k, v), "sdpa_vector_2pass")


@dtypes
def test_sdpa_vector_2pass_masks_and_causal(dtype):
    q, k, v = inputs(1, 2, 1, 4, 150, 64, dtype, seed=9)
    keep = torch.rand(4, 150, generator=torch.Generator().manual_seed(10)) > 0.5
    keep[:, 0] = True
    out, _ = run("mlx.sdpa_vector_2pass", q, k, v, mask=keep)
    check(out, *expected(q, k, v, mask=keep), "sdpa_vector_2pass bool mask")
    out, _ = run("mlx.sdpa_vector_2pass", q, k, v, causal=True)
    check(out, *expected(q, k, v, causal=True), "sdpa_vector_2pass causal")


@pytest.mark.parametrize("d", [64, 128])
def test_sdpa_vector_2pass_gqa_first_pass(d):
    q, k, v = inputs(1, 8, 1, 1, 8192, d, torch.float16, seed=11)  # 8 query heads per KV head, 8192 keys
    out, kernels = run("mlx.sdpa_decode", q, k, v)
    assert kernels[0].startswith("sdpa_vector_2pass_1_gqa_")
    check(out, *expected(q, k, v), "sdpa_vector_2pass gqa")


@dtypes
@pytest.mark.parametrize("d", [64, 80, 128])
@pytest.mark.parametrize("lq, n", [(64, 64), (40, 50)], ids=["aligned", "tails"])
def test_steel_attention(dtype, d, lq, n):
    q, k, v = inputs(1, 4, 2, lq, n, d, dtype, seed=12)
    out, kernels = run("mlx.steel_attention", q, k, v)
    assert kernels[0].endswith(f"_bd{d}_wm4_wn1_mask{str(dtype).split('.')[-1]}")
    check(out, *expected(q, k, v), "steel attention")


@dtypes
def test_steel_attention_causal_and_masks(dtype):
    q, k, v = inputs(1, 2, 2, 40, 50, 64, dtype, seed=13)
    out, _ = run("mlx.steel_attention", q, k, v, causal=True)
    check(out, *expected(q, k, v, causal=True), "steel attention causal")
    keep = torch.rand(40, 50, generator=torch.Generator().manual_seed(14)) > 0.3
    keep[:, 0] = True
    out, kernels = run("mlx.steel_attention", q, k, v, mask=keep)
    assert kernels[0].endswith("_maskbool_")
    check(out, *expected(q, k, v, mask=keep), "steel attention bool mask")
    additive = randn(1, 2, 40, 50, seed=15, dtype=dtype)
    out, _ = run("mlx.steel_attention", q, k, v, mask=additive)
    check(out, *expected(q, k, v, mask=additive), "steel attention additive mask")
