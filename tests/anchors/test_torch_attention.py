"""PyTorch's MPS attention kernels (decode one- and two-pass, prefill) read from the installed torch, run on the
emulator with Attention.mm's host logic, against torch's own scaled_dot_product_attention and a float64
computation of the documented semantics (softmax(q k^T * scale + mask) v, grouped heads, upper-left causal)."""

import math

import pytest
import torch
import torch.nn.functional as F

from mpskernels.anchors import REGISTRY, for_family
from mpskernels.anchors import torch_mps as tm
from mpskernels.tolerances import compare

from mpskernels.tolerances import tolerance_for

# The verifier's rule (mpskernels.verify.check): on top of the dtype's tolerance, the anchor may be twice as far from
# float64 as torch's own op in the same dtype is, plus rtol times the output's RMS (a sum of many rounded terms,
# here the two-pass kernel's partial outputs stored in the input dtype, errs relative to the terms, not the sum).
REFERENCE_ERROR_FACTOR = 2.0


def randn(*shape, seed, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


def qkv(batch, heads, kv_heads, q_len, kv_len, dim, dtype, seed=0):
    return (randn(batch, heads, q_len, dim, seed=seed, dtype=dtype),
            randn(batch, kv_heads, kv_len, dim, seed=seed + 1, dtype=dtype),
            randn(batch, kv_heads, kv_len, dim, seed=seed + 2, dtype=dtype))


def reference(q, k, v, mask=None, is_causal=False, scale=None):
    """The semantics in float64: grouped heads share a key/value head, a boolean mask keeps the True keys, a float
    mask adds to the scores, the causal flag lets query row r see keys 0..r (upper-left)."""
    q, k, v = q.double(), k.double(), v.double()
    group = q.size(-3) // k.size(-3)
    k, v = k.repeat_interleave(group, -3), v.repeat_interleave(group, -3)
    scores = q @ k.transpose(-1, -2) * (1 / math.sqrt(q.size(-1)) if scale is None else scale)
    if is_causal:
        keep = torch.ones(q.size(-2), k.size(-2), dtype=torch.bool).tril()
        scores = scores.masked_fill(~keep, float("-inf"))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask.double()
    return torch.softmax(scores, -1) @ v


def torch_sdpa(q, k, v, mask=None, is_causal=False, scale=None):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, scale=scale,
                                          enable_gqa=q.size(-3) != k.size(-3))


LOG2E = 1.4426950408889634


def prefill_query(q, scale):
    """The query as PrefillAttention.h computes with it: it multiplies Q by scale * log2(e), both in the input dtype,
    and stores the product in that dtype (then uses exp2). In bf16 that rounding alone moves outputs by more than
    torch's own bf16 error, so the float64 computation starts from the query the kernel reads."""
    s = torch.tensor((1 / math.sqrt(q.size(-1)) if scale is None else scale) * LOG2E).to(q.dtype)
    return (q * s).to(q.dtype), 1 / LOG2E


def check(op, q, k, v, mask=None, is_causal=False, scale=None, as_read=None):
    """`as_read(q, scale) -> (q, scale)`: the query the kernel documents it computes with, where it rounds it."""
    got = op(q, k, v, mask, is_causal=is_causal, scale=scale)
    assert got.shape == q.shape and got.dtype == q.dtype
    exact = reference(q, k, v, mask, is_causal, scale)
    read_q, read_scale = as_read(q, scale) if as_read else (q, scale)
    want = reference(read_q, k, v, mask, is_causal, read_scale)
    torch_error = (torch_sdpa(q, k, v, mask, is_causal, scale).double() - exact).abs()
    slack = REFERENCE_ERROR_FACTOR * torch_error + tolerance_for(q.dtype).rtol * want.pow(2).mean().sqrt()
    result = compare(got, want, q.dtype, slack=slack)
    assert result.ok, f"{op.name} q {tuple(q.shape)} k {tuple(k.shape)}: {result}"


def test_the_float64_semantics_are_torchs():
    q, k, v = qkv(2, 4, 2, 5, 7, 16, torch.float64)
    bool_mask = randn(2, 1, 5, 7, seed=9) > -0.5
    float_mask = randn(5, 7, seed=10)
    for mask, causal in ((None, True), (bool_mask, False), (float_mask, False), (None, False)):
        torch.testing.assert_close(reference(q, k, v, mask, causal, 0.3), torch_sdpa(q, k, v, mask, causal, 0.3))


def test_the_ops_are_registered_as_attention_anchors():
    names = {op.name for op in for_family("attention") if op.anchor == "torch"}
    assert names == {"torch.sdpa_vector", "torch.sdpa_vector_2pass", "torch.prefill_attention"}
    assert all(REGISTRY[n].dtypes == (torch.float32, torch.float16, torch.bfloat16) for n in names)


# ---- which kernel PyTorch picks (no kernel runs) ----


@pytest.mark.parametrize("heads, kv_heads, q_len, kv_len, dim, dtype, mask, causal, path", [
    (4, 4, 1, 1023, 64, torch.float16, None, False, "torch.sdpa_vector"),
    (4, 4, 1, 1024, 64, torch.float16, None, False, "torch.sdpa_vector_2pass"),
    (4, 2, 8, 2000, 128, torch.bfloat16, torch.bool, False, "torch.sdpa_vector_2pass"),  # GQA below 4096 too
    (4, 4, 2, 100, 96, torch.float32, None, True, "torch.sdpa_vector"),
    (4, 4, 2, 100, 256, torch.float32, torch.float32, False, "torch.sdpa_vector"),
    (4, 4, 9, 100, 64, torch.float16, None, True, "torch.prefill_attention"),
    (4, 4, 1, 100, 80, torch.float16, None, False, None),  # no vector kernel for 80, and too short for prefill
    (4, 4, 2, 100, 64, torch.float16, torch.bool, True, None),  # no vector kernel with both mask and causal
    (4, 4, 2, 100, 64, torch.float16, torch.float32, False, None),  # a float mask must have the query's dtype
    (4, 4, 9, 8, 64, torch.float16, None, False, "torch.prefill_attention"),
    (4, 4, 5, 4, 64, torch.float16, None, False, None),  # more queries than keys leaves the vector path
    (4, 4, 40, 40, 48, torch.float16, None, False, None),
])
def test_sdpa_path_is_attention_mm_s_choice(heads, kv_heads, q_len, kv_len, dim, dtype, mask, causal, path):
    q = torch.empty(1, heads, q_len, dim, dtype=dtype)
    k = v = torch.empty(1, kv_heads, kv_len, dim, dtype=dtype)
    m = None if mask is None else torch.zeros(q_len, kv_len, dtype=mask)
    assert tm.sdpa_path(q, k, v, m, causal) == path


# ---- decode, one pass ----


@pytest.mark.parametrize("batch, heads, kv_heads, q_len, kv_len, dim, dtype, mask, causal", [
    (1, 2, 2, 1, 37, 64, torch.float32, None, False),
    (1, 4, 2, 3, 50, 128, torch.float16, torch.bool, False),  # GQA, boolean mask
    (2, 2, 1, 2, 33, 64, torch.bfloat16, None, True),  # causal: row r sees keys 0..r
    (1, 2, 2, 2, 40, 64, torch.float32, torch.float32, False),  # additive mask
])
def test_sdpa_vector(batch, heads, kv_heads, q_len, kv_len, dim, dtype, mask, causal):
    q, k, v = qkv(batch, heads, kv_heads, q_len, kv_len, dim, dtype)
    m = None
    if mask is torch.bool:
        m = randn(batch, 1, q_len, kv_len, seed=7) > -0.5  # broadcast over heads: stride 0 there
    elif mask is not None:
        m = randn(q_len, kv_len, seed=7, dtype=dtype)
    check(tm.SDPA_VECTOR, q, k, v, m, causal, scale=None if causal else 0.2)


def test_sdpa_vector_reads_a_kv_cache_through_its_strides():
    """Keys and values as views of a longer cache (seq stride != dim, head and batch strides of the cache), and a
    3-D query (no batch dimension), as the host passes them: no copies."""
    q = randn(2, 1, 64, seed=0)
    cache_k, cache_v = randn(1, 2, 60, 64, seed=1), randn(1, 2, 60, 64, seed=2)
    k, v = cache_k[:, :, 5:45], cache_v[:, :, 5:45]
    assert not k.is_contiguous()
    check(tm.SDPA_VECTOR, q, k[0], v[0])


# ---- decode, two passes ----


@pytest.mark.parametrize("batch, heads, kv_heads, q_len, kv_len, dim, dtype, mask, causal", [
    (1, 2, 1, 1, 1024, 64, torch.float32, None, False),  # GQA
    (1, 2, 2, 2, 1100, 128, torch.bfloat16, torch.bool, False),  # keys not a multiple of the 256-key stride
    (1, 2, 2, 2, 1024, 64, torch.float16, None, True),
])
def test_sdpa_vector_2pass(batch, heads, kv_heads, q_len, kv_len, dim, dtype, mask, causal):
    q, k, v = qkv(batch, heads, kv_heads, q_len, kv_len, dim, dtype, seed=3)
    m = None if mask is None else randn(1, heads, q_len, kv_len, seed=8) > -1.0
    prepared = tm.SDPA_VECTOR_2PASS.prepare(q, k, v, m, is_causal=causal)
    assert prepared.kernels[1] == f"sdpa_vector_2pass_2_{tm.METAL_TYPE[dtype]}_{dim}"
    check(tm.SDPA_VECTOR_2PASS, q, k, v, m, causal)


def test_a_prepared_launch_runs_again_with_the_same_result():
    q, k, v = qkv(1, 2, 2, 1, 1024, 64, torch.float32, seed=4)
    prepared = tm.SDPA_VECTOR_2PASS.prepare(q, k, v)
    prepared.launch()
    first = prepared.out.clone()
    prepared.out.fill_(float("nan"))
    prepared.launch()
    assert torch.equal(prepared.out, first)
    assert prepared.kernels == ("sdpa_vector_2pass_1_float_64_64_masknone", "sdpa_vector_2pass_2_float_64")


def test_decode_refuses_what_it_has_no_kernel_for():
    q, k, v = qkv(1, 2, 2, 1, 16, 80, torch.float32)
    with pytest.raises(ValueError, match="head dims"):
        tm.SDPA_VECTOR.prepare(q, k, v)
    q, k, v = qkv(1, 2, 2, 1, 16, 64, torch.float32)
    with pytest.raises(ValueError, match="mask and the causal flag"):
        tm.SDPA_VECTOR.prepare(q, k, v, torch.ones(1, 16, dtype=torch.bool), is_causal=True)
    with pytest.raises(TypeError, match="boolean mask"):
        tm.SDPA_VECTOR.prepare(q, k, v, torch.zeros(1, 16, dtype=torch.float16))


# ---- prefill ----


@pytest.mark.parametrize("batch, heads, kv_heads, q_len, kv_len, dim, dtype, mask, causal", [
    (1, 2, 2, 40, 45, 64, torch.float32, None, False),  # a partial query block and a partial key block
    (1, 2, 2, 33, 33, 64, torch.float16, None, True),
    (1, 4, 2, 20, 30, 128, torch.bfloat16, torch.bool, False),  # GQA, BQ 32 / BK 16 for head dim 128
    (2, 1, 1, 12, 40, 64, torch.float32, torch.float32, True),  # causal with more keys than queries, and a mask
    (1, 2, 1, 40, 40, 80, torch.float16, torch.float16, False),  # head dims 80 and 96 (BQ 32 / BK 32), an additive
    (1, 2, 1, 40, 40, 96, torch.bfloat16, None, True),  # mask and causal: the anchor lane's prefill rows
])
def test_prefill_attention(batch, heads, kv_heads, q_len, kv_len, dim, dtype, mask, causal):
    q, k, v = qkv(batch, heads, kv_heads, q_len, kv_len, dim, dtype, seed=5)
    m = None
    if mask is torch.bool:
        m = randn(batch, heads, q_len, kv_len, seed=11) > -1.0
        m[..., 0] = True  # every row keeps a key (a fully masked row is NaN in torch, 0 in the kernel)
    elif mask is not None:
        m = randn(batch, 1, q_len, kv_len, seed=11, dtype=dtype)
    check(tm.PREFILL_ATTENTION, q, k, v, m, causal, as_read=prefill_query)


def test_prefill_kernel_names_follow_the_block_shape_of_the_head_dim():
    q, k, v = qkv(1, 1, 1, 9, 9, 128, torch.bfloat16)
    name = tm.PREFILL_ATTENTION.prepare(q, k, v, torch.ones(9, 9, dtype=torch.bool), is_causal=True).kernels[0]
    assert name == "prefill_attention_bfloat16_bq32_bk16_bd128_wm4_wn1_hm1_dc1_maskbool_"
