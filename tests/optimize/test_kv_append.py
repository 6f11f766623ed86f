"""Issue 18: a Hugging Face cache's update done in place inside routed attention (optimize/kv_append.py): one
kv_cache_append launch for keys and values instead of DynamicCache's two torch.cat (or StaticCache's two
index_copy_), with the attention kernel reading the buffer up to kv_len.

Checked against the cache's own update (values, shapes, what earlier results keep), through crop and beam
reordering (the buffer is given up and the layer's tensors taken again), with strided new rows, past the end of a
static cache, and end to end: 32 greedy tokens through generate() identical to eager with either cache class."""

import pytest
import torch

import mpskernels
from mpskernels.optimize import optimize
from mpskernels.optimize.kv_append import CacheView, buffer_of, in_place_update
from mpskernels.optimize.routes import RouteStats

transformers = pytest.importorskip("transformers")
from transformers import DynamicCache, StaticCache  # noqa: E402


@pytest.fixture
def emulator():
    with mpskernels.use_backend("emulator"), torch.no_grad():
        yield


def config(layers=2):
    # head_dim 64: one the attention kernel covers (the cache is appended in place only where attention is routed)
    return transformers.LlamaConfig(vocab_size=96, hidden_size=256, intermediate_size=256, num_hidden_layers=layers,
                                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)


def rows(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_dynamic_updates_match_the_caches_own_and_keep_earlier_results(emulator):
    ours, theirs = DynamicCache(config=config()), DynamicCache(config=config())
    stats = RouteStats()
    view = CacheView(ours, stats)
    assert isinstance(view, DynamicCache) and len(view) == len(ours)
    earlier = []
    for step, new in enumerate([5, 1, 1, 3, 1]):
        k, v = rows(1, 2, new, 32, seed=step), rows(1, 2, new, 32, seed=100 + step)
        got = view.update(k, v, 1)
        want = theirs.update(k.clone(), v.clone(), 1)
        for g, w in zip(got, want):
            assert torch.equal(g, w)
        earlier.append((got[0], got[0].clone()))
    assert stats.routed["kv_cache_append"] == 4  # the first update (the prefill) is the cache's own
    assert ours.layers[1].keys.shape == theirs.layers[1].keys.shape == (1, 2, 11, 32)
    assert all(torch.equal(t, copy) for t, copy in earlier)  # rows past a returned tensor were written, not its own
    assert buffer_of(*got) is not None and buffer_of(*got)[0].shape[2] > 11


def test_crop_and_reorder_give_the_buffer_up(emulator):
    cache = DynamicCache(config=config())
    k, v = rows(2, 2, 6, 16), rows(2, 2, 6, 16, seed=1)
    cache.update(k, v, 0)
    in_place_update(cache, rows(2, 2, 1, 16, seed=2), rows(2, 2, 1, 16, seed=3), 0)
    held = cache.layers[0].keys.clone()
    cache.crop(-3)  # a view of the buffer, but not the one handed out: taken again into a new buffer
    cache.layers[0].batch_select_indices(torch.tensor([1, 0]))
    k1, v1 = rows(2, 2, 1, 16, seed=4), rows(2, 2, 1, 16, seed=5)
    keys, values = in_place_update(cache, k1, v1, 0)
    assert torch.equal(keys, torch.cat([held[:, :, :4][[1, 0]], k1], 2))
    assert keys.shape == values.shape == (2, 2, 5, 16)


def test_strided_new_rows_and_half_precision(emulator):
    cache = DynamicCache(config=config())
    cache.update(rows(1, 2, 3, 64).half(), rows(1, 2, 3, 64, seed=1).half(), 0)
    k = rows(1, 2, 1, 128, seed=2).half()[..., ::2]  # every other element of a longer row
    v = rows(1, 2, 1, 64, 2, seed=3).half()[..., 1]
    assert not k.is_contiguous() and not v.is_contiguous()
    keys, values = in_place_update(cache, k, v, 0)
    assert torch.equal(keys[:, :, 3:], k) and torch.equal(values[:, :, 3:], v)


def test_static_cache_appends_at_its_offset_and_refuses_past_the_end(emulator):
    cfg = config(1)
    ours, theirs = StaticCache(config=cfg, max_cache_len=6), StaticCache(config=cfg, max_cache_len=6)
    for step, new in enumerate([3, 1, 2]):
        k, v = rows(1, 2, new, 32, seed=step), rows(1, 2, new, 32, seed=9 + step)
        got = CacheView(ours, RouteStats()).update(k, v, 0)
        want = theirs.update(k.clone(), v.clone(), 0)
        assert all(torch.equal(g, w) for g, w in zip(got, want))
        assert int(ours.layers[0].cumulative_length) == int(theirs.layers[0].cumulative_length)
    assert in_place_update(ours, rows(1, 2, 1, 32), rows(1, 2, 1, 32), 0) is None  # full: the cache's own says so
    ours.layers[0].cumulative_length.zero_()  # changed behind our back: the offset is read again
    keys, _ = in_place_update(ours, rows(1, 2, 1, 32, seed=7), rows(1, 2, 1, 32, seed=8), 0)
    assert torch.equal(keys[:, :, 0:1], rows(1, 2, 1, 32, seed=7))


def test_other_layer_classes_are_left_to_the_cache():
    cfg = config(2)
    cfg.sliding_window, cfg.layer_types = 4, ["sliding_attention", "full_attention"]
    cache = DynamicCache(config=cfg)
    cache.update(rows(1, 2, 3, 16), rows(1, 2, 3, 16), 0)
    assert in_place_update(cache, rows(1, 2, 1, 16), rows(1, 2, 1, 16), 0) is None


@pytest.mark.parametrize("implementation", [None, "static"])
def test_llama_generates_the_same_32_tokens_with_the_cache_appended_in_place(implementation, emulator,
                                                                            monkeypatch):
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config()).eval()
    model.generation_config.pad_token_id = 0
    prompt = torch.randint(0, 96, (1, 7))
    options = dict(max_new_tokens=32, min_new_tokens=32, do_sample=False, cache_implementation=implementation)
    want = model.generate(prompt, **options)
    optimize(model, example_inputs=(prompt,))
    seen = {"append": 0, "buffer_reads": 0}
    real_append, real_fused, real_attention = (mpskernels.ops.kv_cache_append, mpskernels.ops.rope_kv_append,
                                               mpskernels.ops.attention)

    def append(*a):
        seen["append"] += 1
        return real_append(*a)

    def rope_and_append(*a):  # later steps append with the rotation of the keys (rope_append.py)
        seen["append"] += 1
        return real_fused(*a)

    def attention(q, k, v, mask, causal, scale, kv_len):
        seen["buffer_reads"] += kv_len is not None and kv_len < k.shape[2]
        return real_attention(q, k, v, mask, causal, scale, kv_len)

    from mpskernels.optimize import kv_append, routes
    monkeypatch.setattr(kv_append.ops, "kv_cache_append", append)
    monkeypatch.setattr(kv_append.ops, "rope_kv_append", rope_and_append)
    monkeypatch.setattr(routes.ops, "attention", attention)
    got = model.generate(prompt, **options)
    assert torch.equal(got, want)
    # every decode step, in both layers (the prefill is the cache's own update: it allocates the static layer)
    assert seen["append"] == 2 * 31
    assert seen["buffer_reads"] == (0 if implementation else 2 * 31)


class GrowsItsState(torch.nn.Module):
    """A call that changes its argument, as a KV cache's update does: the next call with it computes more."""

    def __init__(self):
        super().__init__()
        self.norm = torch.nn.RMSNorm(8, eps=1e-6)

    def forward(self, x, state):
        state.append(len(state))
        return self.norm(x) * len(state)


def test_the_whole_model_check_runs_on_the_example_as_it_was_given(emulator):
    """optimize() runs the model on the example twice (capture, then the check with the swaps); the second run
    must see the arguments as they were before the first changed them, or every swap is undone for nothing (a
    sliding-window cache past its window did that to Gemma-2)."""
    model = GrowsItsState()
    optimize(model, example_inputs=(torch.randn(3, 8), []))
    report = model.mpskernels_report
    assert report.output_check.startswith("ok") and report.counts() == {"rms_norm": 1}, str(report)
