"""rope and kv_cache_append beyond the generated tests.

rope is compared with literal re-implementations of the model code it replaces (HF LLaMA's rotate_half /
apply_rotary_pos_emb with LlamaRotaryEmbedding's tables, GPT-NeoX's partial rotary, GPT-J's rotate_every_two with
its sin/cos table and position ids), written here in plain torch since transformers is not installed. Then: decode
offsets against per-token tables, the several-heads-per-thread variant, the kernel's clamp of bad ids, usage errors.
kv_cache_append: a decode loop, untouched rows, caches that are views, errors, torch.compile, and both Metal
backends' argument binding for tuple and in-place results. Every kernel run is on the emulator.
"""

import pytest
import torch

from mpskernels import launches, registry, runtime
from mpskernels.kernels import kv_cache, rope
from mpskernels.kernels.spec import TensorMeta
from mpskernels.runtime import use_backend
from mpskernels.tolerances import compare
from test_metal_backends import fake_metal  # noqa: F401  (a fixture: both Metal backends through the emulator)


@pytest.fixture(autouse=True)
def poisoned_outputs(monkeypatch):
    monkeypatch.setattr(registry, "poison_outputs", True)


def emulated_rope(q, k, cos, sin, position_ids=None, offset=0, interleaved=False):
    with use_backend("emulator"):
        return torch.ops.mpskernels.rope(q, k, cos, sin, position_ids, offset, interleaved)


def assert_matches(got, want, dtype):
    result = compare(got, want, dtype)
    assert result.ok, str(result)


# ---- literal model code (transformers' modeling_llama.py, modeling_gpt_neox.py, modeling_gptj.py) ----


def llama_inv_freq(dim, base=10000.0):
    return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))


def llama_rotary_embedding(x, position_ids, dim, base=10000.0, attention_scaling=1.0):
    """LlamaRotaryEmbedding.forward: cos and sin [B, S, dim] in x's dtype."""
    inv_freq_expanded = llama_inv_freq(dim, base)[None, :, None].float().expand(position_ids.shape[0], -1, 1)
    position_ids_expanded = position_ids[:, None, :].float()
    freqs = (inv_freq_expanded.float() @ position_ids_expanded.float()).transpose(1, 2)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos = emb.cos() * attention_scaling
    sin = emb.sin() * attention_scaling
    return cos.to(dtype=x.dtype), sin.to(dtype=x.dtype)


def hf_rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def hf_apply_rotary_pos_emb(q, k, cos, sin, position_ids=None, unsqueeze_dim=1):
    cos = cos.unsqueeze(unsqueeze_dim)
    sin = sin.unsqueeze(unsqueeze_dim)
    q_embed = (q * cos) + (hf_rotate_half(q) * sin)
    k_embed = (k * cos) + (hf_rotate_half(k) * sin)
    return q_embed, k_embed


def gpt_neox_rotary(query, key, cos, sin, rotary_ndims):
    """GPTNeoXAttention: rotate the first rotary_ndims dims, pass the rest through."""
    query_rot, query_pass = query[..., :rotary_ndims], query[..., rotary_ndims:]
    key_rot, key_pass = key[..., :rotary_ndims], key[..., rotary_ndims:]
    query, key = hf_apply_rotary_pos_emb(query_rot, key_rot, cos, sin)
    return torch.cat((query, query_pass), dim=-1), torch.cat((key, key_pass), dim=-1)


def gptj_create_sinusoidal_positions(num_pos, dim):
    inv_freq = 1.0 / (10000 ** (torch.arange(0, dim, 2, dtype=torch.int64) / dim))
    sinusoid_inp = torch.einsum("i , j -> i j", torch.arange(num_pos, dtype=torch.int64).float(), inv_freq).float()
    return torch.cat((torch.sin(sinusoid_inp), torch.cos(sinusoid_inp)), dim=1)


def gptj_rotate_every_two(x):
    x1 = x[:, :, :, ::2]
    x2 = x[:, :, :, 1::2]
    x = torch.stack((-x2, x1), dim=-1)
    return x.flatten(-2)


def gptj_apply_rotary_pos_emb(tensor, sin, cos):
    sin = torch.repeat_interleave(sin[:, :, None, :], 2, 3)
    cos = torch.repeat_interleave(cos[:, :, None, :], 2, 3)
    return (tensor * cos) + (gptj_rotate_every_two(tensor) * sin)


def gptj_attention_rotary(query, key, position_ids, embed_positions, rotary_dim):
    """GPTJAttention.forward's rotary part, on [B, S, H, D] heads; returns [B, H, S, D] as it does."""
    repeated_position_ids = position_ids.unsqueeze(-1).repeat(1, 1, embed_positions.shape[-1])
    sincos = torch.gather(embed_positions.unsqueeze(0).expand(position_ids.shape[0], -1, -1), 1,
                          repeated_position_ids)
    sin, cos = torch.split(sincos, sincos.shape[-1] // 2, dim=-1)
    k_rot, k_pass = key[:, :, :, :rotary_dim], key[:, :, :, rotary_dim:]
    q_rot, q_pass = query[:, :, :, :rotary_dim], query[:, :, :, rotary_dim:]
    k_rot = gptj_apply_rotary_pos_emb(k_rot, sin, cos)
    q_rot = gptj_apply_rotary_pos_emb(q_rot, sin, cos)
    key = torch.cat([k_rot, k_pass], dim=-1)
    query = torch.cat([q_rot, q_pass], dim=-1)
    return query.permute(0, 2, 1, 3), key.permute(0, 2, 1, 3)


# ---- rope against the model code ----


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_matches_hf_llama_apply_rotary_pos_emb(dtype):
    batch, q_heads, k_heads, seq, head_dim = 2, 4, 2, 9, 64
    q = torch.randn(batch, q_heads, seq, head_dim).to(dtype)
    k = torch.randn(batch, k_heads, seq, head_dim).to(dtype)
    position_ids = torch.tensor([[0, 1, 2, 3, 4, 5, 6, 7, 8], [3, 4, 5, 6, 7, 8, 9, 10, 11]])
    cos, sin = llama_rotary_embedding(q, position_ids, head_dim, base=500000.0)
    q_out, k_out = emulated_rope(q, k, cos, sin)
    # HF's own arithmetic in float32 on the same (rounded) inputs, as the oracle.
    q_hf, k_hf = hf_apply_rotary_pos_emb(q.float(), k.float(), cos.float(), sin.float())
    assert q_out.dtype == dtype and q_out.shape == q.shape and k_out.shape == k.shape
    assert_matches(q_out, q_hf, dtype)
    assert_matches(k_out, k_hf, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_matches_gpt_neox_partial_rotary(dtype):
    head_dim, rotary_ndims = 32, 8  # rotary_pct 0.25
    q = torch.randn(1, 3, 33, head_dim).to(dtype)
    k = torch.randn(1, 3, 33, head_dim).to(dtype)
    position_ids = torch.arange(33).unsqueeze(0)
    cos, sin = llama_rotary_embedding(q, position_ids, rotary_ndims)
    q_out, k_out = emulated_rope(q, k, cos, sin)
    q_hf, k_hf = gpt_neox_rotary(q.float(), k.float(), cos.float(), sin.float(), rotary_ndims)
    assert_matches(q_out, q_hf, dtype)
    assert_matches(k_out, k_hf, dtype)
    assert torch.equal(q_out[..., rotary_ndims:], q[..., rotary_ndims:])  # passed through bit for bit


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_matches_gptj_rotate_every_two_with_position_ids(dtype):
    batch, heads, seq, head_dim, rotary_dim, max_pos = 2, 3, 7, 40, 16, 64
    query = torch.randn(batch, seq, heads, head_dim).to(dtype)  # GPT-J rotates [B, S, H, D] heads
    key = torch.randn(batch, seq, heads, head_dim).to(dtype)
    position_ids = torch.tensor([[5, 6, 7, 8, 9, 10, 11], [0, 2, 4, 6, 8, 10, 63]])
    embed_positions = gptj_create_sinusoidal_positions(max_pos, rotary_dim)
    q_hf, k_hf = gptj_attention_rotary(query.float(), key.float(), position_ids, embed_positions, rotary_dim)
    # The op's tables: GPT-J's halves, repeated per pair as its apply_rotary_pos_emb does.
    sin_half, cos_half = torch.split(embed_positions, rotary_dim // 2, dim=-1)
    cos, sin = cos_half.repeat_interleave(2, -1), sin_half.repeat_interleave(2, -1)
    q_out, k_out = emulated_rope(query.transpose(1, 2), key.transpose(1, 2), cos, sin, position_ids, 0, True)
    assert_matches(q_out, q_hf, dtype)
    assert_matches(k_out, k_hf, dtype)


# ---- rope: positions, variants, clamping ----


def test_decode_offset_equals_per_token_tables_and_position_ids():
    head_dim, past = 64, 37
    q, k = torch.randn(1, 8, 1, head_dim), torch.randn(1, 2, 1, head_dim)
    table_cos, table_sin = llama_rotary_embedding(q, torch.arange(128).unsqueeze(0), head_dim)
    tok_cos, tok_sin = llama_rotary_embedding(q, torch.tensor([[past]]), head_dim)
    from_table = emulated_rope(q, k, table_cos[0], table_sin[0], None, past, False)
    from_token = emulated_rope(q, k, tok_cos, tok_sin, None, 0, False)
    from_ids = emulated_rope(q, k, table_cos[0], table_sin[0], torch.tensor([past], dtype=torch.int32), 0, False)
    for got in (from_table, from_ids):
        for g, want in zip(got, from_token):
            torch.testing.assert_close(g, want, rtol=0, atol=0)
    q_hf, _ = hf_apply_rotary_pos_emb(q, k, tok_cos, tok_sin)
    assert_matches(from_table[0], q_hf, torch.float32)


@pytest.mark.parametrize("q_heads, k_heads", [(3, 2), (4, 4), (1, 1)])
def test_several_heads_per_thread(monkeypatch, q_heads, k_heads):
    monkeypatch.setattr(rope, "FILL_THREADS", 0)  # always the HEADS_PER_THREAD variant
    monkeypatch.setattr(registry.RUNNERS["rope"], "plans", {})
    q, k = torch.randn(2, q_heads, 5, 20), torch.randn(2, k_heads, 5, 20)
    cos, sin = rope.tables(9, 12, False, torch.float32)
    plan = rope.plan(TensorMeta.of(q), TensorMeta.of(k), TensorMeta.of(cos), TensorMeta.of(sin), None, 4, False)
    assert plan.buffers[15].value == rope.HEADS_PER_THREAD
    assert plan.threads[1] == -(-(q_heads + k_heads) // rope.HEADS_PER_THREAD)
    got = emulated_rope(q, k, cos, sin, None, 4, False)
    for g, want in zip(got, rope.reference(q.double(), k.double(), cos.double(), sin.double(), None, 4, False)):
        assert_matches(g, want, torch.float32)


@pytest.mark.parametrize("q_heads, k_heads, seq, group", [
    (32, 8, 4096, (8, 10, 2)),   # LLaMA-3: 10 head blocks of 4, two tokens a group: 160 threads, 5 SIMD groups
    (14, 2, 4096, (8, 4, 8)),    # Qwen2.5-0.5B: 4 head blocks, 8 tokens: 256 threads
    (32, 32, 4096, (8, 16, 2)),  # LLaMA-2: 16 head blocks, 2 tokens
    (32, 8, 1, (8, 32, 1)),      # decode: one head a thread, 40 blocks over groups of 32 (the edge group smaller)
])
def test_threadgroups_fill_whole_simd_groups_with_tokens(q_heads, k_heads, seq, group):
    half = torch.bfloat16
    metas = [TensorMeta(s, half) for s in ((1, q_heads, seq, 128), (1, k_heads, seq, 128), (4096, 128), (4096, 128))]
    p = rope.plan(*metas, None, 0, False)
    assert p.group_size == group
    threads = group[0] * group[1] * group[2]
    assert threads % 32 == 0 and threads <= rope.GROUP


def test_plan_picks_variant_and_geometry():
    def plan_of(q, k, cos, ids=None, offset=0):
        metas = [TensorMeta(s, d) for s, d in (q, k, cos, cos)]
        return rope.plan(*metas, None if ids is None else TensorMeta(*ids), offset, False)

    half = torch.float16
    p = plan_of(((1, 32, 1, 128), half), ((1, 8, 1, 128), half), ((4096, 128), half), offset=100)
    assert p.kernel == "rope_float16" and p.threads == (8, 40, 1) and p.buffers[15].value == 1
    assert p.group_size[0] * p.group_size[1] % 32 == 0 and p.group_size[0] * p.group_size[1] <= 1024
    p = plan_of(((1, 32, 2048, 128), half), ((1, 8, 2048, 128), half), ((2048, 128), torch.float32),
                ids=((1, 2048), torch.int64))
    assert p.kernel == "rope_ids64_f32tables_float16" and p.buffers[-1] == "position_ids"
    assert p.buffers[15].value == rope.HEADS_PER_THREAD and p.threads == (8, 10, 2048)  # 8-half chunks


def test_kernel_clamps_out_of_range_ids():
    """validate rejects bad ids on CPU; on the GPU they are not read back, so the kernel clamps them in bounds."""
    q, k = torch.randn(1, 1, 3, 4), torch.randn(1, 1, 3, 4)
    cos, sin = rope.tables(5, 4, False, torch.float32)
    ids = torch.tensor([-7, 2, 99])
    tensors = {"q": q, "k": k, "cos": cos, "sin": sin, "position_ids": ids,
               "q_out": torch.full_like(q, float("nan")), "k_out": torch.full_like(k, float("nan"))}
    metas = {n: TensorMeta.of(t) for n, t in tensors.items() if n not in ("q_out", "k_out")}
    plan = rope.plan(**metas, offset=0, interleaved=False)
    runtime.BACKENDS["emulator"].launch(rope.ROPE, plan, tensors)
    want_q, want_k = rope.reference(q, k, cos, sin, torch.tensor([0, 2, 4]), 0, False)
    assert_matches(tensors["q_out"], want_q, torch.float32)
    assert_matches(tensors["k_out"], want_k, torch.float32)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(offset=3), r"offset \+ \[0, 4\) with offset 3 must lie in the 6 rows"),
        (dict(offset=-1), r"with offset -1 must lie"),
        (dict(position_ids=torch.tensor([0, 1, 2, 6])), r"position_ids must lie in \[0, 6\)"),
        (dict(position_ids=torch.tensor([0, 1, 2, 3]), offset=1), "either position_ids or an offset"),
        (dict(position_ids=torch.zeros(4)), "position_ids must be an integer tensor"),
        (dict(position_ids=torch.zeros(3, 4, dtype=torch.long)), r"position_ids must be \[seq\]"),
        (dict(cos=torch.ones(6, 5), sin=torch.ones(6, 5)), "must be even"),
        (dict(cos=torch.ones(6, 10), sin=torch.ones(6, 10)), "must be even and in"),
        (dict(cos=torch.ones(3, 6, 8), sin=torch.ones(3, 6, 8)), "cos and sin have batch 3"),
        (dict(cos=torch.ones(2, 2, 6, 8), sin=torch.ones(2, 2, 6, 8)), "cos and sin must be"),
        (dict(sin=torch.ones(7, 8)), "must have one shape"),
        (dict(k=torch.randn(2, 1, 4, 6)), "must match q"),
        (dict(q=torch.randn(4, 8)), r"must be \[batch, heads, seq, head_dim\]"),
    ],
)
def test_usage_errors(change, message):
    args = dict(q=torch.randn(2, 3, 4, 8), k=torch.randn(2, 1, 4, 8), cos=torch.ones(6, 8), sin=torch.ones(6, 8),
                position_ids=None, offset=0, interleaved=False)
    args.update(change)
    with pytest.raises(ValueError, match=r"mpskernels\.rope: .*" + message):
        torch.ops.mpskernels.rope(*args.values())


def test_table_dtype_other_than_q_or_float32_falls_back(monkeypatch):
    launched = []
    monkeypatch.setattr(runtime.BACKENDS["emulator"], "launch", lambda *a: launched.append(a))
    q, k = torch.randn(1, 2, 3, 8, dtype=torch.float16), torch.randn(1, 2, 3, 8, dtype=torch.float16)
    cos, sin = rope.tables(3, 8, False, torch.bfloat16)
    got = emulated_rope(q, k, cos, sin)
    for g, want in zip(got, rope.reference(q, k, cos, sin, None, 0, False)):
        torch.testing.assert_close(g, want)
    assert launched == []


# ---- kv_cache_append ----


def emulated_append(k_cache, v_cache, k, v, offset):
    with use_backend("emulator"):
        assert torch.ops.mpskernels.kv_cache_append(k_cache, v_cache, k, v, offset) is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_prefill_then_decode_fills_the_cache_in_place(dtype):
    batch, heads, cache_len, head_dim = 2, 3, 12, 33
    sentinel = -1234.0
    k_cache = torch.full((batch, heads, cache_len, head_dim), sentinel, dtype=dtype)
    v_cache = torch.full((batch, heads, cache_len, head_dim), sentinel, dtype=dtype)
    k_ptr, v_ptr = k_cache.data_ptr(), v_cache.data_ptr()
    keys = torch.randn(batch, heads, cache_len, head_dim).to(dtype)
    values = torch.randn(batch, heads, cache_len, head_dim).to(dtype)
    emulated_append(k_cache, v_cache, keys[:, :, :5], values[:, :, :5], 0)  # prefill of 5
    for pos in range(5, 9):  # four decode steps
        emulated_append(k_cache, v_cache, keys[:, :, pos : pos + 1], values[:, :, pos : pos + 1], pos)
    assert k_cache.data_ptr() == k_ptr and v_cache.data_ptr() == v_ptr
    assert torch.equal(k_cache[:, :, :9], keys[:, :, :9]) and torch.equal(v_cache[:, :, :9], values[:, :, :9])
    assert (k_cache[:, :, 9:] == sentinel).all() and (v_cache[:, :, 9:] == sentinel).all()


def test_append_into_cache_views_writes_through():
    """A cache that is a strided view (one layer of a stacked cache, every other head) is written in place."""
    stacked = torch.zeros(2, 1, 4, 10, 8)  # [layers, B, H, S_max, D]
    k_cache, v_cache = stacked[0, :, ::2], stacked[1, :, 1::2]
    assert not k_cache.is_contiguous()
    k, v = torch.randn(1, 2, 3, 8), torch.randn(1, 2, 3, 8)
    emulated_append(k_cache, v_cache, k, v, 6)
    assert torch.equal(stacked[0, :, ::2, 6:9], k) and torch.equal(stacked[1, :, 1::2, 6:9], v)
    assert stacked[0, :, 1::2].abs().sum() == 0 and stacked[1, :, ::2].abs().sum() == 0
    assert stacked[:, :, :, :6].abs().sum() == 0 and stacked[:, :, :, 9:].abs().sum() == 0


def test_different_k_and_v_head_sizes():
    k_cache, v_cache = torch.zeros(1, 2, 8, 16), torch.zeros(1, 2, 8, 5)
    k, v = torch.randn(1, 2, 2, 16), torch.randn(1, 2, 2, 5)
    emulated_append(k_cache, v_cache, k, v, 3)
    assert torch.equal(k_cache[:, :, 3:5], k) and torch.equal(v_cache[:, :, 3:5], v)
    assert k_cache[:, :, :3].abs().sum() == 0 and v_cache[:, :, 5:].abs().sum() == 0


@pytest.mark.parametrize(
    "offset, k_shape, v_shape, message",
    [
        (7, (1, 2, 2, 8), (1, 2, 2, 8), r"offset 7 \+ 2 new entries must fit the cache length 8"),
        (-1, (1, 2, 2, 8), (1, 2, 2, 8), "offset -1"),
        (0, (1, 2, 2, 8), (1, 2, 3, 8), "k and v one length"),
        (0, (1, 3, 2, 8), (1, 3, 2, 8), "batch and heads must agree"),
        (0, (1, 2, 2, 4), (1, 2, 2, 8), "must have their cache's head_dim"),
        (0, (2, 2, 8), (1, 2, 2, 8), r"must be \[batch, heads, seq, head_dim\]"),
    ],
)
def test_append_usage_errors(offset, k_shape, v_shape, message):
    k_cache, v_cache = torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 8, 8)
    with pytest.raises(ValueError, match=r"mpskernels\.kv_cache_append: .*" + message):
        torch.ops.mpskernels.kv_cache_append(k_cache, v_cache, torch.randn(k_shape), torch.randn(v_shape), offset)
    assert k_cache.abs().sum() == 0


def test_append_constraint_on_huge_heads():
    huge = torch.empty(1, 1, 2**22, 2**10, device="meta")
    inputs = {"k_cache": huge, "v_cache": torch.empty(1, 1, 8, 8, device="meta")}
    assert "elements per head" in kv_cache.per_head_fits_uint32(inputs)
    inputs["k_cache"] = torch.empty(4, 8, 2**20, 128, device="meta")  # 2^32 elements in all, 2^27 per head
    assert kv_cache.per_head_fits_uint32(inputs) is None


def test_rope_and_append_compile_fullgraph():
    from torch._dynamo.testing import CompileCounter

    counter = CompileCounter()

    @torch.compile(backend=counter, fullgraph=True)
    def step(q, k, v, cos, sin, k_cache, v_cache, pos):
        q, k = torch.ops.mpskernels.rope(q, k, cos, sin, pos, 0, False)
        torch.ops.mpskernels.kv_cache_append(k_cache, v_cache, k, v, 4)
        return q * 2

    torch._dynamo.reset()
    q, k, v = torch.randn(1, 4, 2, 16), torch.randn(1, 2, 2, 16), torch.randn(1, 2, 2, 16)
    cos, sin = rope.tables(10, 16, False, torch.float32)
    pos = torch.tensor([4, 5])
    k_cache, v_cache = torch.zeros(1, 2, 8, 16), torch.zeros(1, 2, 8, 16)
    out = step(q, k, v, cos, sin, k_cache, v_cache, pos)
    want_q, want_k = rope.reference(q, k, cos, sin, pos, 0, False)
    torch.testing.assert_close(out, want_q * 2)
    torch.testing.assert_close(k_cache[:, :, 4:6], want_k)
    torch.testing.assert_close(v_cache[:, :, 4:6], v)
    assert counter.frame_count == 1


# ---- both Metal backends, with tuple and in-place results ----


@pytest.mark.parametrize("backend", ["metal-jit", "metal"])
@pytest.mark.parametrize("name", ["rope", "kv_cache_append"])
def test_metal_backends_bind_tuple_and_in_place_results(fake_metal, backend, name):
    """What test_metal_backends does for single-output ops, here for rope's (q_out, k_out) and the caches that
    kv_cache_append writes in place."""
    family = registry.RUNNERS[name].family
    names = registry.argument_names(family.schema)
    for dtype in family.dtypes:
        for args in family.examples(dtype):
            args = tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)
            ref_args = tuple(a.double() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
                             for a in args)
            with use_backend(backend):
                out = registry.op(name)(*args)
            ref = family.reference(*ref_args)
            got = (out if isinstance(out, tuple) else () if out is None else (out,)) + tuple(
                args[names.index(m)] for m in family.mutates)
            want = (ref if isinstance(ref, tuple) else () if ref is None else (ref,)) + tuple(
                ref_args[names.index(m)] for m in family.mutates)
            assert len(got) == len(want) > 0
            for g, w in zip(got, want):
                assert_matches(g, w, dtype)


# ---- the 16-byte fast path and its guarded tail ----


def offset_view(t, offset):
    """t's values in a contiguous tensor bound `offset` elements into its storage (never 16-byte aligned)."""
    flat = torch.empty(t.numel() + offset, dtype=t.dtype)
    flat[offset:] = t.reshape(-1)
    return flat[offset:].view(t.shape)


@pytest.mark.parametrize("bounds", ["guarded", "own-memory"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_fast_path_and_tail(dtype, bounds, monkeypatch):
    """Head rows whose rotary halves (or interleaved rotary part) are whole 16-byte chunks, a pair more or fewer,
    and a pass-through part of whole chunks or not; on the emulator's guarded copies and on the tensors' own memory,
    also bound at an element offset."""
    monkeypatch.setenv("MPSKERNELS_EMULATOR_BOUNDS", "1" if bounds == "guarded" else "0")
    n = 16 // torch.empty((), dtype=dtype).element_size()
    gen = torch.Generator().manual_seed(3)
    for interleaved in (False, True):
        for head_dim, rotary_dim in ((4 * n, 4 * n), (4 * n + 2, 4 * n + 2), (4 * n - 2, 4 * n - 2),
                                     (5 * n, 4 * n), (5 * n + 1, 4 * n)):
            for offset in (0, 1):
                q = offset_view(torch.randn(2, 3, 4, head_dim, generator=gen).to(dtype), offset)
                k = offset_view(torch.randn(2, 1, 4, head_dim, generator=gen).to(dtype), offset)
                cos, sin = rope.tables(4, rotary_dim, interleaved, dtype)
                before = launches.count()
                got = emulated_rope(q, k, offset_view(cos, offset), sin, None, 0, interleaved)
                assert launches.count() == before + 1  # the kernel ran: no fallback to the reference
                want = rope.reference(*(t.double() for t in (q, k, cos, sin)), None, 0, interleaved)
                for g, w in zip(got, want):
                    assert_matches(g, w, dtype)


@pytest.mark.parametrize("bounds", ["guarded", "own-memory"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_kv_cache_append_fast_path_and_tail(dtype, bounds, monkeypatch):
    """Head sizes of whole 16-byte chunks, one element more and one fewer; sources bound at an element offset;
    the copy is bit for bit, NaN payloads included."""
    monkeypatch.setenv("MPSKERNELS_EMULATOR_BOUNDS", "1" if bounds == "guarded" else "0")
    n = 16 // torch.empty((), dtype=dtype).element_size()
    gen = torch.Generator().manual_seed(4)
    for d in (4 * n - 1, 4 * n, 4 * n + 1):
        for offset in (0, 1):
            k_cache, v_cache = (torch.randn(2, 2, 9, d, generator=gen).to(dtype) for _ in range(2))
            k, v = (offset_view(torch.randn(2, 2, 3, d, generator=gen).to(dtype), offset) for _ in range(2))
            k.view(torch.int16 if dtype != torch.float32 else torch.int32)[0, 0, 0, 0] = -3  # a NaN with a payload
            want_k, want_v = k_cache.clone(), v_cache.clone()
            want_k[:, :, 5:8], want_v[:, :, 5:8] = k, v
            before = launches.count()
            with use_backend("emulator"):
                torch.ops.mpskernels.kv_cache_append(k_cache, v_cache, k, v, 5)
            assert launches.count() == before + 1
            for got, want in ((k_cache, want_k), (v_cache, want_v)):
                assert torch.equal(got.view(torch.uint8), want.view(torch.uint8))


# ---- footprint on the NVIDIA lane (ptxas for sm_90, no GPU) ----


def lane_tools_missing() -> bool:
    from mpskernels.cuda import nvrtc
    from mpskernels.cuda.registers import ptxas

    return ptxas() is None or nvrtc.library() is None


@pytest.mark.skipif(lane_tools_missing(), reason="needs NVRTC and ptxas")
@pytest.mark.parametrize("interleaved", [False, True])
def test_every_rope_kernel_holds_its_tables_in_registers(interleaved):
    """Every 16-bit kernel kept 8-16 B of stack and spilled 8-24 B with fp32 table values at a 1024-thread bound;
    with the tables held as bits and the 256-thread threadgroup declared, none keeps a value in local memory."""
    from mpskernels.cuda.registers import kernel_resources

    resources = kernel_resources("rope.metal", (("interleaved", interleaved),))
    # five dtype / table combinations, three position sources, for rope and for rope_kv_append
    assert len(resources) == 5 * 3 * 2
    assert sum(r.kernel.startswith("rope_kv_append") for r in resources) == 5 * 3
    assert all(r.in_registers for r in resources), [r for r in resources if not r.in_registers]
