"""Issue 18: the rotary embedding of q and k and the KV-cache update in one rope_kv_append launch, inside a routed
attention forward (optimize/rope_append.py): the rotation is deferred to the update, and done the plain way first
whenever anything else would see its outputs or change its inputs."""

import pytest
import torch

import mpskernels
from mpskernels import ops
from mpskernels.optimize import OptimizeConfig, optimize
from mpskernels.optimize.kv_append import CacheView
from mpskernels.optimize.rope_append import Deferrals
from mpskernels.optimize.routes import RouteStats, _SDPARoute

transformers = pytest.importorskip("transformers")
from transformers import DynamicCache  # noqa: E402

from .test_kv_append import config, emulator, rows  # noqa: E402, F401  (emulator: the fixture)


def rotation(seed=0, new=1):
    """q, k, cos, sin of one decode step (HF's half-split tables, [1, seq, head_dim])."""
    angles = rows(1, new, 16, seed=seed + 3) * 3
    angles = torch.cat((angles, angles), -1)
    return rows(1, 4, new, 32, seed=seed), rows(1, 2, new, 32, seed=seed + 1), angles.cos(), angles.sin()


def deferred(seed=0):
    deferrals = Deferrals()
    deferrals.in_place = True
    q, k, cos, sin = rotation(seed)
    q_out, k_out = deferrals.defer(q, k, cos, sin, False)
    return deferrals, (q, k, cos, sin), q_out, k_out


def test_a_torch_call_given_a_deferred_output_or_input_sees_the_rotation_done(emulator):
    for reader in range(6):  # q, k, cos, sin (an in-place change would alter the rotation), q_out, k_out
        deferrals, inputs, q_out, k_out = deferred(reader)
        want = ops.rope(*inputs, None, 0, False)
        touched = (*inputs, q_out, k_out)[reader]
        with _SDPARoute(RouteStats(), deferrals):
            torch.add(touched, 0)
        assert not deferrals.pending
        torch.testing.assert_close((q_out, k_out), want, rtol=0, atol=0)


def test_an_update_that_is_not_in_place_gets_rotated_keys(emulator):
    cache = DynamicCache(config=config())
    deferrals, inputs, q_out, k_out = deferred()
    v = rows(1, 2, 1, 32, seed=9)
    keys, values = CacheView(cache, RouteStats(), deferrals).update(k_out, v, 0)  # a prefill: the cache's own
    want_q, want_k = ops.rope(*inputs, None, 0, False)
    assert torch.equal(keys, want_k) and torch.equal(values, v) and torch.equal(q_out, want_q)
    assert not deferrals.in_place and not deferrals.pending


def test_an_in_place_update_appends_the_rotated_keys_in_one_launch(emulator):
    ours, theirs = DynamicCache(config=config()), DynamicCache(config=config())
    for cache in (ours, theirs):
        cache.update(rows(1, 2, 5, 32, seed=7), rows(1, 2, 5, 32, seed=8), 0)
    stats = RouteStats()
    view = CacheView(ours, stats, Deferrals())
    view.update(rows(1, 2, 1, 32, seed=5), rows(1, 2, 1, 32, seed=6), 0)  # in place, nothing deferred
    theirs.update(rows(1, 2, 1, 32, seed=5), rows(1, 2, 1, 32, seed=6), 0)
    deferrals = object.__getattribute__(view, "_deferrals")
    assert deferrals.in_place
    q, k, cos, sin = rotation(11)
    q_out, k_out = deferrals.defer(q, k, cos, sin, False)
    v = rows(1, 2, 1, 32, seed=12)
    keys, values = view.update(k_out, v, 0)
    want_q, want_k = ops.rope(q, k, cos, sin, None, 0, False)
    want_keys, want_values = theirs.update(want_k, v, 0)
    assert stats.routed == {"kv_cache_append": 1, "rope_kv_append": 1}
    assert torch.equal(keys, want_keys) and torch.equal(values, want_values)
    assert torch.equal(q_out, want_q) and torch.equal(k_out, want_k)


def test_a_forward_ending_with_a_deferral_rotates_it_and_an_error_drops_it(emulator):
    from mpskernels.optimize.routes import RoutedForward

    routed = object.__new__(RoutedForward)
    routed.attention, routed.stats = True, RouteStats()
    deferrals, inputs, q_out, k_out = deferred()
    routed.deferrals = deferrals
    routed.forward = lambda: (q_out, k_out)  # returns the outputs without a torch call reading them
    torch.testing.assert_close(routed._attention_routed(), ops.rope(*inputs, None, 0, False), rtol=0, atol=0)
    deferrals.in_place = True
    deferrals.defer(*rotation(), False)

    def fails():
        raise KeyError("boom")
    routed.forward = fails
    with pytest.raises(KeyError):
        routed._attention_routed()
    assert not deferrals.pending


def _generate(implementation, monkeypatch, optimize_config=None, tokens=12):
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config()).eval()
    model.generation_config.pad_token_id = 0
    prompt = torch.randint(0, 96, (1, 7))
    options = dict(max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, cache_implementation=implementation)
    want = model.generate(prompt, **options)
    optimize(model, optimize_config, example_inputs=(prompt,))
    calls = {"rope": 0, "kv_cache_append": 0, "rope_kv_append": 0}
    for name in calls:
        real = getattr(ops, name)
        monkeypatch.setattr(ops, name, lambda *a, _n=name, _real=real: (calls.__setitem__(_n, calls[_n] + 1),
                                                                        _real(*a))[1])
    assert torch.equal(model.generate(prompt, **options), want)
    return model, calls


@pytest.mark.parametrize("implementation", [None, "static"])
def test_llama_generates_the_same_tokens_with_rope_and_append_in_one_launch(implementation, emulator, monkeypatch):
    model, calls = _generate(implementation, monkeypatch)
    # 2 layers: the prefill rotates and updates on its own, the first step rotates and appends in place, and
    # every later step (10 of them) rotates and appends in one launch
    assert calls == {"rope": 2 * 2, "kv_cache_append": 2, "rope_kv_append": 2 * 10}
    attention = model.model.layers[1].self_attn.forward.replacement().forward  # the routed forward
    assert attention.stats.routed["rope_kv_append"] == 10 and "rope_kv_append" in attention.describe()


def test_excluding_the_fused_kernel_keeps_rope_and_the_append_apart(emulator, monkeypatch):
    _, calls = _generate(None, monkeypatch, OptimizeConfig(exclude=["rope_kv_append"]))
    assert calls == {"rope": 2 * 12, "kv_cache_append": 2 * 11, "rope_kv_append": 0}
