"""Hugging Face's eager attention functions stood in for by grouped matmuls around one softmax launch
(optimize/eager_attention.py): which functions qualify, what the stand-in computes, and the calls it leaves."""

import types

import pytest
import torch

from mpskernels.optimize import eager_attention
from mpskernels.optimize.routes import RouteStats
from mpskernels.runtime import use_backend
from mpskernels.tolerances import compare

transformers = pytest.importorskip("transformers")
from transformers.models.gemma2 import modeling_gemma2  # noqa: E402
from transformers.models.llama import modeling_llama  # noqa: E402

GEMMA_EAGER = modeling_gemma2.eager_attention_forward
LLAMA_EAGER = modeling_llama.eager_attention_forward


def module(groups=2):
    return types.SimpleNamespace(num_key_value_groups=groups, training=False, head_dim=16)


def inputs(dtype=torch.float32, groups=2, q_len=1, n=9, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(2, 2 * groups, q_len, 16, generator=gen) * 3
    k, v = torch.randn(2, 2, n, 16, generator=gen) * 3, torch.randn(2, 2, n, 16, generator=gen)
    mask = torch.zeros(2, 1, q_len, n)
    mask[0, ..., n // 2:] = torch.finfo(torch.float32).min  # HF's additive mask: finfo.min where hidden
    return q.to(dtype), k.to(dtype), v.to(dtype), mask.to(dtype)


def formula(q, k, v, mask, scaling, softcap, groups):
    """The attention eager_attention_forward computes, in float64 from the scores q k^T in q's dtype (the matmul's
    output, as both compute it), as [B, S, Hq, D]: KV heads repeated, scores scaled, soft-capped, masked, softmax
    (its probabilities in q's dtype), times V."""
    keys = k.double().repeat_interleave(groups, dim=1)
    values = v.double().repeat_interleave(groups, dim=1)
    s = (q.double() @ keys.transpose(2, 3)).to(q.dtype).double() * scaling
    if softcap is not None:
        s = softcap * torch.tanh(s / softcap)
    if mask is not None:
        s = s + mask.double()
    probs = torch.softmax(s, -1).to(q.dtype).double()  # rounded to q's dtype before P V, as both do
    return (probs @ values).transpose(1, 2)


# ---- which functions qualify ----


def test_hugging_face_eager_functions_qualify():
    assert eager_attention.eager_form(GEMMA_EAGER) is not None  # dropout, scaling, softcap with defaults
    assert eager_attention.eager_form(LLAMA_EAGER) is not None  # scaling without a default
    assert eager_attention.agrees(GEMMA_EAGER, module()) and eager_attention.agrees(LLAMA_EAGER, module(1))


def reads_kwargs(module, query, key, value, attention_mask, scaling=None, **kwargs):
    return GEMMA_EAGER(module, query, key, value, attention_mask, scaling=scaling,
                       softcap=kwargs.get("softcap_value"))


def extra_parameter(module, query, key, value, attention_mask, scaling=None, sliding_window=None, **kwargs):
    return GEMMA_EAGER(module, query, key, value, attention_mask, scaling=scaling)


def other_order(module, key, query, value, attention_mask, scaling=None):
    return GEMMA_EAGER(module, query, key, value, attention_mask, scaling=scaling)


def no_scaling(module, query, key, value, attention_mask, **kwargs):
    return GEMMA_EAGER(module, query, key, value, attention_mask)


def off_by_a_bit(module, query, key, value, attention_mask, scaling=None, softcap=None, **kwargs):
    out, weights = GEMMA_EAGER(module, query, key, value, attention_mask, scaling=scaling, softcap=softcap)
    return out * 1.001, weights


@pytest.mark.parametrize("f", [reads_kwargs, extra_parameter, other_order, len, GEMMA_EAGER.__call__])
def test_functions_whose_meaning_is_not_pinned_down_are_left(f):
    assert eager_attention.eager_form(f) is None


@pytest.mark.parametrize("f", [no_scaling, off_by_a_bit])
def test_functions_that_differ_on_the_probes_are_left(f):
    assert eager_attention.eager_form(f) is not None and not eager_attention.agrees(f, module())


def test_a_module_without_kv_groups_is_left():
    assert not eager_attention.agrees(GEMMA_EAGER, types.SimpleNamespace(training=False))


# ---- what the stand-in computes ----


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("softcap, q_len", [(None, 1), (5.0, 1), (50.0, 7)])
def test_the_stand_in_computes_the_formula_and_the_function(dtype, softcap, q_len):
    q, k, v, mask = inputs(dtype, q_len=q_len)
    stats = RouteStats()
    stand_in = eager_attention.stand_in("eager", GEMMA_EAGER, eager_attention.eager_form(GEMMA_EAGER), stats)
    with use_backend("emulator"), torch.no_grad():
        out, weights = stand_in(module(), q, k, v, mask, dropout=0.0, scaling=0.25, softcap=softcap,
                                sliding_window=4)  # read by no one: the mask holds the window
        own, _ = GEMMA_EAGER(module(), q, k, v, mask, scaling=0.25, softcap=softcap)
    assert weights is None and stats.routed["eager attention"] == 1 and out.is_contiguous()
    want = formula(q, k, v, mask, 0.25, softcap, 2)
    assert compare(out, want.to(dtype), dtype).ok
    if dtype == torch.float32:
        assert compare(out, own, dtype).ok
    else:  # the function rounds every step of the scores to bf16; the stand-in keeps them in fp32
        assert (out.double() - want).abs().max() <= (own.double() - want).abs().max()


def test_keys_and_values_are_read_where_they_are():
    # an in-place cache hands views of its buffer (kv_append.py): strided k and v, never repeated or copied
    q, k, v, mask = inputs(n=12)
    k_view, v_view = k[:, :, :9], v[:, :, :9]
    with use_backend("emulator"), torch.no_grad():
        out = eager_attention.grouped_attention(q, k_view, v_view, mask[..., :9], 0.25, 5.0, 2)
    assert compare(out, formula(q, k_view, v_view, mask[..., :9], 0.25, 5.0, 2).float(), torch.float32).ok


# ---- calls it leaves to the function ----


def leaves(call, reason):
    stats = RouteStats()
    stand_in = eager_attention.stand_in("eager", GEMMA_EAGER, eager_attention.eager_form(GEMMA_EAGER), stats)
    out, weights = call(stand_in)
    assert stats.routed["eager attention"] == 0 and weights is not None  # the function's own result
    assert any(reason in r for r in stats.not_routed), stats.not_routed
    return out


def test_dropout_gradients_and_a_missing_scale_run_the_function():
    q, k, v, mask = inputs()
    with torch.no_grad():
        leaves(lambda f: f(module(), q, k, v, mask, dropout=0.1, scaling=0.25), "dropout 0.1")
        leaves(lambda f: f(module(), q, k, v, mask), "no scaling given")
        leaves(lambda f: f(module(), q, k, v, mask.double(), scaling=0.25), "not additive in q's dtype")
    q.requires_grad_()
    out = leaves(lambda f: f(module(), q, k, v, mask, scaling=0.25), "gradients are needed")
    out.sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()


def test_requested_attention_weights_run_the_function():
    from transformers.utils.output_capturing import _active_collector

    q, k, v, mask = inputs()
    token = _active_collector.set({"attentions": []})
    try:
        with torch.no_grad():
            leaves(lambda f: f(module(), q, k, v, mask, scaling=0.25), "output_attentions")
    finally:
        _active_collector.reset(token)


def test_grouped_heads_must_match_the_module():
    q, k, v, mask = inputs(groups=2)
    assert "query heads per KV head" in eager_attention.grouped_attention(q, k, v, mask, 0.25, None, 3)
