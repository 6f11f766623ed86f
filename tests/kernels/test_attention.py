"""attention beyond the generated tests: the reference's semantics against PyTorch SDPA, the prefill/decode choice,
decode head grouping, KV-cache tails, masks (broadcast shapes, -inf, finfo.min, fully masked rows), long KV
lengths, large scores, lane-order independence, usage errors and fallbacks. Every kernel run is on the emulator,
compared with the float64 reference."""

import math

import pytest
import torch
import torch.nn.functional as F

from mpskernels import registry, runtime
from mpskernels.kernels import attention as attn
from mpskernels.kernels.spec import TensorMeta
from mpskernels.runtime import use_backend
from mpskernels.tolerances import compare

NEG_INF = float("-inf")


@pytest.fixture(autouse=True)
def poisoned_outputs(monkeypatch):
    monkeypatch.setattr(registry, "poison_outputs", True)


@pytest.fixture
def fresh_plans(monkeypatch):
    """Plans are cached per shape: tests that change a module constant start from an empty cache."""
    monkeypatch.setattr(registry.RUNNERS["attention"], "plans", {})


def randn(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


def qkv(batch, q_heads, kv_heads, q_len, kv_cap, head_dim, dtype=torch.float32, seed=0):
    return (randn(batch, q_heads, q_len, head_dim, seed=seed, dtype=dtype),
            randn(batch, kv_heads, kv_cap, head_dim, seed=seed + 1, dtype=dtype),
            randn(batch, kv_heads, kv_cap, head_dim, seed=seed + 2, dtype=dtype))


def emulated(q, k, v, mask=None, causal=False, scale=None, kv_len=None):
    with use_backend("emulator"):
        return torch.ops.mpskernels.attention(q, k, v, mask, causal, scale, kv_len)


def expected(q, k, v, mask=None, causal=False, scale=None, kv_len=None):
    up = lambda t: None if t is None else t.double()  # noqa: E731
    return attn.reference(up(q), up(k), up(v), up(mask), causal, scale, kv_len)


def check(q, k, v, mask=None, causal=False, scale=None, kv_len=None):
    got = emulated(q, k, v, mask, causal, scale, kv_len)
    assert got.dtype == q.dtype and got.shape == q.shape
    result = compare(got, expected(q, k, v, mask, causal, scale, kv_len), q.dtype)
    assert result.ok, f"q {tuple(q.shape)} k {tuple(k.shape)} kv_len {kv_len} causal {causal}: {result}"
    return got


def kernel_for(q, k, mask=None, kv_len=None):
    meta = lambda t: None if t is None else TensorMeta.of(t)  # noqa: E731
    return attn.plan(meta(q), meta(k), meta(k), meta(mask), True, None, kv_len)


# ---- the reference's semantics ----


def test_reference_is_sdpa_for_self_attention_with_grouped_heads():
    q, k, v = qkv(2, 4, 2, 13, 13, 64)
    mask = randn(2, 1, 13, 13, seed=5)
    full_k, full_v = k.repeat_interleave(2, dim=1), v.repeat_interleave(2, dim=1)
    torch.testing.assert_close(attn.reference(q, k, v, None, True, None, None),
                               F.scaled_dot_product_attention(q, full_k, full_v, is_causal=True))
    torch.testing.assert_close(attn.reference(q, k, v, mask, False, 0.2, None),
                               F.scaled_dot_product_attention(q, full_k, full_v, attn_mask=mask, scale=0.2))


def test_reference_with_a_kv_cache_puts_the_queries_at_the_end():
    q, k, v = qkv(1, 2, 2, 3, 20, 64)
    kv_len = 11
    visible = torch.ones(3, kv_len, dtype=torch.bool).tril(diagonal=kv_len - 3)  # query i sees keys <= 8 + i
    want = F.scaled_dot_product_attention(q, k[:, :, :kv_len], v[:, :, :kv_len], attn_mask=visible)
    torch.testing.assert_close(attn.reference(q, k, v, None, True, None, kv_len), want)
    # one decode token sees every cached key
    want1 = F.scaled_dot_product_attention(q[:, :, :1], k[:, :, :kv_len], v[:, :, :kv_len])
    torch.testing.assert_close(attn.reference(q[:, :, :1], k, v, None, True, None, kv_len), want1)


# ---- prefill or decode ----


def test_plan_runs_decode_up_to_8_queries_and_prefill_beyond():
    k = torch.empty(1, 2, 40, 64)
    assert kernel_for(torch.empty(1, 4, 8, 64), k).kernel == "attention_decode_d64_float32"
    plan = kernel_for(torch.empty(1, 4, 9, 64), k)
    assert plan.kernel == "attention_prefill_d64_float32"
    assert plan.threads == (attn.PREFILL_THREADS, 4, 1)
    assert kernel_for(torch.empty(2, 4, 33, 64), torch.empty(2, 2, 40, 64)).threads == (2 * attn.PREFILL_THREADS, 4, 2)
    # the scale defaults to 1 / sqrt(head_dim) and binds as buffer 5
    assert math.isclose(plan.buffers[5].value, 1 / math.sqrt(64))


def test_decode_heads_per_group_fills_at_most_8_rows_and_keeps_threadgroups():
    assert attn.decode_heads_per_group(1, 32, 8, 1) == 1  # 32 threadgroups need one head each
    assert attn.decode_heads_per_group(4, 32, 8, 1) == 4  # 4 * 8 threadgroups with all 4 heads of a KV group
    assert attn.decode_heads_per_group(4, 32, 8, 3) == 2  # 3 tokens: 2 heads fill 6 rows
    assert attn.decode_heads_per_group(1, 8, 8, 8) == 1


@pytest.mark.parametrize("q_len, per_group", [(2, 4), (3, 2), (1, 4)])
def test_decode_threadgroups_covering_several_query_heads(monkeypatch, fresh_plans, q_len, per_group):
    monkeypatch.setattr(attn, "DECODE_MIN_THREADGROUPS", 1)
    q, k, v = qkv(1, 8, 2, q_len, 45, 80, seed=q_len)
    assert kernel_for(q, k, kv_len=41).buffers[-1].value == per_group
    mask = randn(1, 8, q_len, 45, seed=9)
    check(q, k, v, mask, True, None, 41)
    check(q, k, v, None, False, 0.1, 41)


# ---- KV cache ----


@pytest.mark.parametrize("q_len", [1, 5, 20])
def test_the_cache_past_kv_len_is_never_used(q_len):
    q, k, v = qkv(1, 2, 1, q_len, 72, 64, seed=q_len)
    kv_len = 37
    k[:, :, kv_len:] = float("nan")
    v[:, :, kv_len:] = float("inf")
    got = check(q, k, v, None, True, None, kv_len)
    assert got.isfinite().all()


@pytest.mark.parametrize("q_len, kv_len, head_dim", [(1, 300, 64), (6, 257, 128), (40, 130, 96)])
def test_long_kv_lengths(q_len, kv_len, head_dim):
    q, k, v = qkv(1, 1, 1, q_len, kv_len + 3, head_dim, seed=kv_len)
    check(q, k, v, None, True, None, kv_len)


# ---- masks ----


@pytest.mark.parametrize("q_len", [2, 17])
@pytest.mark.parametrize("mask_shape", [(1,), (40,), (37,), ("Sq", 40), (1, 1, 1, 40), (2, 1, "Sq", 37), (1, 2, 1, 1),
                                        (2, 2, "Sq", 1)], ids=str)
def test_mask_broadcasting(q_len, mask_shape):
    """Masks of every broadcastable shape; the last dimension is 1, kv_len (37) or the cache's capacity (40)."""
    q, k, v = qkv(2, 2, 1, q_len, 40, 64, seed=q_len)
    mask = randn(*(q_len if s == "Sq" else s for s in mask_shape), seed=3)
    check(q, k, v, mask, False, None, 37)


@pytest.mark.parametrize("q_len", [4, 35])
def test_rows_masked_by_minus_inf_give_nan_like_softmax(q_len):
    q, k, v = qkv(1, 2, 2, q_len, 40, 64)
    mask = randn(1, 2, q_len, 40, seed=7)
    mask[0, 0, 1, :] = NEG_INF  # a whole row
    mask[0, 1, :, :33] = NEG_INF  # every key of the first block (and more)
    got = emulated(q, k, v, mask, False, None, None)
    want = expected(q, k, v, mask)
    assert got[0, 0, 1].isnan().all() and want[0, 0, 1].isnan().all()
    assert got.isnan().sum() == want.isnan().sum() == 64
    assert compare(got, want, q.dtype).ok


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("q_len", [3, 12])
def test_finfo_min_mask_weighs_visible_keys_like_the_reference(dtype, q_len):
    # finfo.min absorbs the scores exactly in fp32 (for fp16's -65504 it would not: ill-conditioned in fp32)
    q, k, v = qkv(1, 1, 1, q_len, 50, 64, dtype=dtype)
    mask = torch.zeros(1, 1, q_len, 50)
    mask[..., :, 20:] = torch.finfo(dtype).min
    mask[..., 1, :] = torch.finfo(dtype).min  # a fully "masked" row: uniform weights over the visible keys
    check(q, k, v, mask.to(dtype), True, None, 45)


# ---- numerics and scheduling ----


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("q_len", [1, 24])
def test_large_scores(dtype, q_len):
    q, k, v = qkv(1, 2, 1, q_len, 33, 96, dtype=dtype)
    check(q * 8, k * 4, v, None, True, None, None)


@pytest.mark.parametrize("q_len", [3, 33])
def test_results_do_not_depend_on_lane_order(monkeypatch, q_len):
    q, k, v = qkv(1, 2, 1, q_len, 70, 128, dtype=torch.float16)
    mask = randn(q_len, 70, seed=4, dtype=torch.float16)
    fixed = check(q, k, v, mask, True, None, 66)
    monkeypatch.setenv("MPSKERNELS_EMULATOR_ORDER", "shuffled")
    torch.testing.assert_close(emulated(q, k, v, mask, True, None, 66), fixed, rtol=0, atol=0)


# ---- usage errors and fallbacks ----


@pytest.mark.parametrize(
    "args, message",
    [
        ((torch.randn(2, 5, 64), torch.randn(1, 2, 5, 64), torch.randn(1, 2, 5, 64), None, False), "4-D"),
        ((torch.randn(1, 3, 5, 64), torch.randn(1, 2, 5, 64), torch.randn(1, 2, 5, 64), None, False), "multiple"),
        ((torch.randn(1, 2, 5, 64), torch.randn(1, 2, 5, 64), torch.randn(1, 2, 6, 64), None, False), "one shape"),
        ((torch.randn(1, 2, 5, 64), torch.randn(1, 2, 5, 32), torch.randn(1, 2, 5, 32), None, False), "head_dim"),
        ((torch.randn(1, 2, 5, 64), torch.randn(1, 2, 8, 64), torch.randn(1, 2, 8, 64), None, False, None, 9),
         "kv_len 9"),
        ((torch.randn(1, 2, 5, 64), torch.randn(1, 2, 8, 64), torch.randn(1, 2, 8, 64), None, True, None, 4),
         "causal"),
        ((torch.randn(1, 2, 5, 64), torch.randn(1, 2, 8, 64), torch.randn(1, 2, 8, 64), torch.randn(5, 7), False),
         "mask"),
        ((torch.randn(1, 2, 5, 64), torch.randn(1, 2, 8, 64), torch.randn(1, 2, 8, 64), torch.randn(3, 1, 5, 8),
          False), "mask"),
    ],
)
def test_usage_errors_name_the_op(args, message):
    with pytest.raises(ValueError, match=rf"mpskernels\.attention: .*{message}"):
        torch.ops.mpskernels.attention(*args)


@pytest.mark.parametrize("head_dim", [32, 72, 256])
def test_other_head_dims_run_the_reference(monkeypatch, head_dim):
    launched = []
    monkeypatch.setattr(runtime.BACKENDS["emulator"], "launch", lambda *a: launched.append(a))
    q, k, v = qkv(1, 2, 1, 3, 9, head_dim)
    got = emulated(q, k, v, None, True, None, 7)
    torch.testing.assert_close(got, attn.reference(q, k, v, None, True, None, 7))
    assert launched == []
