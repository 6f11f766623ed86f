"""rope_kv_append beyond the generated tests (tests/test_ops.py runs its declared examples).

Checked against a float64 computation written here from the op's semantics (not the family's reference), against
PyTorch's own ops (HF's rotate_half rotary, then slice assignment into the caches), and against the two launches it
replaces (rope, then kv_cache_append: bit for bit). Then: strided inputs, both layouts, partial rotary, position
ids, every dtype, untouched cache rows (sentinels), the cache bounds, one launch per call, and every refusal naming
its argument. Every kernel run is on the emulator.
"""

import pytest
import torch

import mpskernels
from mpskernels import launches, registry
from mpskernels.kernels import rope, rope_kv
from mpskernels.kernels.spec import TensorMeta
from mpskernels.runtime import use_backend
from mpskernels.tolerances import compare

SENTINEL = -777.0  # exact in every dtype
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


@pytest.fixture(autouse=True)
def poisoned_outputs(monkeypatch):
    monkeypatch.setattr(registry, "poison_outputs", True)


def assert_close(got, want, dtype):
    result = compare(got, want, dtype)
    assert result.ok, str(result)


def emulated(*args):
    """One call on the emulator; the call must launch exactly one kernel and return None."""
    before = launches.count()
    with use_backend("emulator"):
        assert torch.ops.mpskernels.rope_kv_append(*args) is None
    assert launches.count() == before + 1


def expected64(q, k, v, cos, sin, ids, offset, interleaved):
    """The rotated q and k in float64, from the semantics: token (b, s) reads table row ids[b, s] (or offset + s);
    pairs (i, i + R/2) (half-split) or (2i, 2i + 1) (interleaved) of the first R dims rotate, the rest pass."""
    batch, _, seq, _ = q.shape
    c, s = cos.double(), sin.double()
    if c.dim() == 4:
        c, s = c[:, 0], s[:, 0]
    if c.dim() == 2:
        c, s = c[None], s[None]
    r = c.shape[-1]
    rows = [[(offset + t) if ids is None else int(ids.reshape(-1, seq)[min(b, ids.reshape(-1, seq).shape[0] - 1), t])
             for t in range(seq)] for b in range(batch)]
    pairs = [(2 * i, 2 * i + 1) for i in range(r // 2)] if interleaved else [(i, i + r // 2) for i in range(r // 2)]

    def rotate(x):
        x = x.double()
        out = x.clone()
        for b in range(batch):
            tb = min(b, c.shape[0] - 1)
            for t in range(seq):
                cr, sr = c[tb, rows[b][t]], s[tb, rows[b][t]]
                for i0, i1 in pairs:
                    x0, x1 = x[b, :, t, i0], x[b, :, t, i1]
                    out[b, :, t, i0] = x0 * cr[i0] - x1 * sr[i0]
                    out[b, :, t, i1] = x1 * cr[i1] + x0 * sr[i1]
        return out

    return rotate(q), rotate(k)


def make(dtype, batch=2, q_heads=4, k_heads=2, seq=3, head_dim=16, v_dim=None, rotary_dim=None, cache_len=9,
         cache_offset=4, positions=12, interleaved=False, ids_dtype=None, seed=0):
    """Inputs (q, k, v, cos, sin, ids, offset) and sentinel-filled caches and outputs."""
    gen = torch.Generator().manual_seed(seed)
    v_dim = head_dim if v_dim is None else v_dim
    q = torch.randn(batch, q_heads, seq, head_dim, generator=gen).to(dtype)
    k = torch.randn(batch, k_heads, seq, head_dim, generator=gen).to(dtype)
    v = torch.randn(batch, k_heads, seq, v_dim, generator=gen).to(dtype)
    cos, sin = rope.tables(positions, rotary_dim or head_dim, interleaved, dtype)
    ids, offset = None, positions - seq
    if ids_dtype is not None:
        ids, offset = torch.randint(0, positions, (batch, seq), generator=gen, dtype=ids_dtype), 0
    k_cache = torch.full((batch, k_heads, cache_len, head_dim), SENTINEL, dtype=dtype)
    v_cache = torch.full((batch, k_heads, cache_len, v_dim), SENTINEL, dtype=dtype)
    return dict(q=q, k=k, v=v, cos=cos, sin=sin, ids=ids, offset=offset, interleaved=interleaved,
                k_cache=k_cache, v_cache=v_cache, cache_offset=cache_offset)


def call(c, q_out=None, k_out=None):
    q_out = torch.full_like(c["q"], float("nan")) if q_out is None else q_out
    k_out = torch.full_like(c["k"], float("nan")) if k_out is None else k_out
    emulated(q_out, k_out, c["k_cache"], c["v_cache"], c["q"], c["k"], c["v"], c["cos"], c["sin"], c["ids"],
             c["offset"], c["interleaved"], c["cache_offset"])
    return q_out, k_out


def check_against_semantics(c, q_out, k_out, k_cache, v_cache, dtype):
    """q_out, k_out against float64; the caches' written rows hold k_out and v exactly, the rest the sentinel."""
    want_q, want_k = expected64(c["q"], c["k"], c["v"], c["cos"], c["sin"], c["ids"], c["offset"], c["interleaved"])
    assert_close(q_out, want_q, dtype)
    assert_close(k_out, want_k, dtype)
    lo, hi = c["cache_offset"], c["cache_offset"] + c["q"].shape[2]
    assert torch.equal(k_cache[:, :, lo:hi].view(torch.uint8), k_out.view(torch.uint8))  # the rotated k, exactly
    assert torch.equal(v_cache[:, :, lo:hi].view(torch.uint8), c["v"].contiguous().view(torch.uint8))
    for cache in (k_cache, v_cache):
        assert (cache[:, :, :lo] == SENTINEL).all() and (cache[:, :, hi:] == SENTINEL).all()


CONFIGS = {
    "decode-grouped": dict(batch=1, q_heads=4, k_heads=2, seq=1, head_dim=32, cache_len=12, cache_offset=7),
    "prefill-chunk": dict(batch=2, q_heads=3, k_heads=1, seq=6, head_dim=16, v_dim=24, cache_len=10,
                          cache_offset=2),
    "partial-half": dict(head_dim=24, rotary_dim=16, ids_dtype=torch.int64),
    "interleaved-partial": dict(head_dim=20, rotary_dim=12, interleaved=True, ids_dtype=torch.int32),
    "interleaved-odd": dict(head_dim=9, rotary_dim=6, v_dim=7, interleaved=True, cache_offset=5),
    "ids32-last-rows": dict(seq=4, cache_len=7, cache_offset=3, ids_dtype=torch.int32),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("config", CONFIGS)
def test_matches_float64_semantics_and_leaves_other_rows(dtype, config):
    c = make(dtype, **CONFIGS[config])
    q_out, k_out = call(c)
    check_against_semantics(c, q_out, k_out, c["k_cache"], c["v_cache"], dtype)


@pytest.mark.parametrize("config", ["prefill-chunk", "interleaved-odd"])
def test_does_not_depend_on_the_order_threads_run_in(monkeypatch, config):
    """The emulator's threads in a shuffled order: a thread reading what another writes (a v slice and a rotating
    thread sharing a cache row, say) would give another result."""
    fixed = make(torch.float16, **CONFIGS[config])
    want = call(fixed)
    monkeypatch.setenv("MPSKERNELS_EMULATOR_ORDER", "shuffled")
    shuffled = make(torch.float16, **CONFIGS[config])
    for got, expected in zip((*call(shuffled), shuffled["k_cache"], shuffled["v_cache"]),
                             (*want, fixed["k_cache"], fixed["v_cache"])):
        assert torch.equal(got.view(torch.uint8), expected.view(torch.uint8))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_matches_pytorch_rotate_half_and_slice_assignment(dtype):
    """HF's apply_rotary_pos_emb (x * cos + rotate_half(x) * sin with per-token [B, S, D] tables) and the cache
    update a static cache makes, in PyTorch's own ops (in fp32, rounded to the dtype)."""
    gen = torch.Generator().manual_seed(5)
    batch, q_heads, k_heads, seq, head_dim, cache_len, at = 2, 4, 2, 3, 32, 8, 5
    q, k, v = (torch.randn(batch, h, seq, head_dim, generator=gen).to(dtype) for h in (q_heads, k_heads, k_heads))
    cos, sin = rope.tables(seq, head_dim, False, dtype, batch=batch)  # [B, S, D], offset 0
    k_cache, v_cache = (torch.randn(batch, k_heads, cache_len, head_dim, generator=gen).to(dtype) for _ in range(2))
    want_kc, want_vc = k_cache.clone(), v_cache.clone()

    def rotate_half(x):
        return torch.cat((-x[..., head_dim // 2:], x[..., : head_dim // 2]), dim=-1)

    c32, s32 = cos.float().unsqueeze(1), sin.float().unsqueeze(1)
    want_q = (q.float() * c32 + rotate_half(q.float()) * s32).to(dtype)
    want_k = (k.float() * c32 + rotate_half(k.float()) * s32).to(dtype)
    want_kc[:, :, at:at + seq] = want_k
    want_vc[:, :, at:at + seq] = v
    q_out, k_out = torch.empty_like(q), torch.empty_like(k)
    emulated(q_out, k_out, k_cache, v_cache, q, k, v, cos, sin, None, 0, False, at)
    for got, want in ((q_out, want_q), (k_out, want_k), (k_cache, want_kc), (v_cache, want_vc)):
        assert_close(got, want, dtype)
    assert torch.equal(v_cache, want_vc)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("interleaved", [False, True])
def test_equals_rope_then_kv_cache_append_bit_for_bit(dtype, interleaved):
    """A prefill chunk then decode steps: the fused op leaves exactly what the two launches it replaces leave."""
    c = make(dtype, batch=1, q_heads=4, k_heads=2, seq=8, head_dim=24, rotary_dim=16, cache_len=12, positions=12,
             interleaved=interleaved)
    caches = (c["k_cache"].clone(), c["v_cache"].clone())
    two = (c["k_cache"].clone(), c["v_cache"].clone())
    q, k, v = (torch.cat([c[n]] * 2, dim=2)[:, :, :12] for n in ("q", "k", "v"))  # 12 tokens of q, k, v
    steps = [(0, 5), (5, 6), (6, 7), (7, 8)]  # a prefill of 5, then three decode tokens
    for lo, hi in steps:
        args = (q[:, :, lo:hi], k[:, :, lo:hi], c["cos"], c["sin"], None, lo, interleaved)
        q_out, k_out = torch.empty_like(args[0]), torch.empty_like(args[1])
        emulated(q_out, k_out, *caches, args[0], args[1], v[:, :, lo:hi], *args[2:], lo)
        with use_backend("emulator"):
            want_q, want_k = torch.ops.mpskernels.rope(*args)
            torch.ops.mpskernels.kv_cache_append(*two, want_k, v[:, :, lo:hi], lo)
        assert torch.equal(q_out.view(torch.uint8), want_q.view(torch.uint8))
        assert torch.equal(k_out.view(torch.uint8), want_k.view(torch.uint8))
    for got, want in zip(caches, two):
        assert torch.equal(got.view(torch.uint8), want.view(torch.uint8))
    assert (caches[0][:, :, 8:] == SENTINEL).all()


def transposed(t):
    """t's values in a non-contiguous view, as a model's q/k/v are ([B, S, H, D] transposed to [B, H, S, D])."""
    return t.transpose(1, 2).contiguous().transpose(1, 2)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_strided_inputs_outputs_and_caches(dtype):
    """q, k, v transposed views, cos/sin every other column of a wider table, a cache that is one layer of a stacked
    cache, outputs bound at a storage offset: the same results as contiguous tensors."""
    c = make(dtype, seq=4, head_dim=16, cache_len=10, cache_offset=3, ids_dtype=torch.int64)
    plain_q, plain_k = call(c)
    plain = (c["k_cache"].clone(), c["v_cache"].clone())
    s = make(dtype, seq=4, head_dim=16, cache_len=10, cache_offset=3, ids_dtype=torch.int64)
    for n in ("q", "k", "v"):
        s[n] = transposed(s[n])
        assert not s[n].is_contiguous()
    wide = torch.stack((s["cos"], torch.zeros_like(s["cos"])), -1).flatten(-2)
    s["cos"] = wide[:, ::2]
    s["sin"] = torch.stack((s["sin"], torch.zeros_like(s["sin"])), -1).flatten(-2)[:, ::2]
    batch, *rest = s["k_cache"].shape
    stacked = torch.full((batch, 2, *rest), SENTINEL, dtype=dtype)
    s["k_cache"] = stacked[:, 1]  # one layer of [B, layers, H, S_max, D]: not contiguous
    assert not s["k_cache"].is_contiguous()
    q_out = torch.full((c["q"].numel() + 1,), float("nan"), dtype=dtype)[1:].view(c["q"].shape)
    k_out = torch.full_like(c["k"], float("nan")).transpose(2, 3).contiguous().transpose(2, 3)
    call(s, q_out, k_out)
    assert torch.equal(q_out, plain_q) and torch.equal(k_out, plain_k)
    assert torch.equal(s["k_cache"], plain[0]) and torch.equal(s["v_cache"], plain[1])
    assert (stacked[:, 0] == SENTINEL).all()  # the other layer is untouched


@pytest.mark.parametrize("q_heads, k_heads", [(3, 2), (4, 4), (1, 1)])
def test_several_heads_per_thread(monkeypatch, q_heads, k_heads):
    """The HEADS_PER_THREAD variant (a thread rotates up to 4 heads, k's among them stored to the cache too), with
    v spread over several z slices of the smaller grid."""
    monkeypatch.setattr(rope, "FILL_THREADS", 0)
    monkeypatch.setattr(registry.RUNNERS["rope_kv_append"], "plans", {})
    c = make(torch.float32, batch=2, q_heads=q_heads, k_heads=k_heads, seq=5, head_dim=20, rotary_dim=12,
             v_dim=13, cache_len=8, cache_offset=3)
    names = registry.argument_names(rope_kv.ROPE_KV_APPEND.schema)
    values = (c["q"], c["k"], c["k_cache"], c["v_cache"], c["q"], c["k"], c["v"], c["cos"], c["sin"], None,
              c["offset"], False, c["cache_offset"])
    plan = rope_kv.plan(**{n: TensorMeta.of(a) if isinstance(a, torch.Tensor) else a for n, a in zip(names, values)})
    assert plan.buffers[15].value == rope.HEADS_PER_THREAD
    assert plan.threads[1] == -(-(q_heads + k_heads) // rope.HEADS_PER_THREAD)
    assert plan.threads[2] > 2 * 5  # v slices past the tokens
    q_out, k_out = call(c)
    check_against_semantics(c, q_out, k_out, c["k_cache"], c["v_cache"], torch.float32)


def test_plan_geometry():
    def plan_of(q, k, v, cache_len, ids=None):
        half = torch.float16
        metas = dict(q_out=TensorMeta(q, half), k_out=TensorMeta(k, half),
                     k_cache=TensorMeta((k[0], k[1], cache_len, k[3]), half),
                     v_cache=TensorMeta((v[0], v[1], cache_len, v[3]), half), q=TensorMeta(q, half),
                     k=TensorMeta(k, half), v=TensorMeta(v, half), cos=TensorMeta((4096, q[3]), half),
                     sin=TensorMeta((4096, q[3]), half), position_ids=None if ids is None else TensorMeta(*ids))
        return rope_kv.plan(**metas, offset=0, interleaved=False, cache_offset=100)

    # LLaMA decode: 40 heads of 8 units (one slice of 320 threads) + v's 8 heads x 16 chunks (128: one slice).
    p = plan_of((1, 32, 1, 128), (1, 8, 1, 128), (1, 8, 1, 128), 4096)
    assert p.kernel == "rope_kv_append_float16" and p.threads == (8, 40, 1 + 1)
    assert p.buffers[:6] == ("q", "k", "cos", "sin", "q_out", "k_out") and p.buffers[16:19] == ("v", "k_cache",
                                                                                                "v_cache")
    assert [b.value for b in p.buffers[19:23]] == [1, 128, 4096, 100]
    assert p.group_size[0] * p.group_size[1] == rope.GROUP
    p = plan_of((2, 4, 3, 64), (2, 2, 3, 64), (2, 2, 3, 64), 16, ids=((2, 3), torch.int32))
    assert p.kernel == "rope_kv_append_ids32_float16" and p.buffers[-1] == "position_ids" and len(p.buffers) == 24
    assert p.threads[2] == 2 * 3 + -(-(2 * 2 * 24) // (4 * 6))  # tokens + ceil(v chunks / threads per slice)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_v_is_copied_bit_for_bit_with_nan_payloads(dtype):
    c = make(dtype, seq=3, head_dim=16, v_dim=16 + 1)
    c["v"].view(torch.int16 if dtype != torch.float32 else torch.int32)[0, 0, 0, 0] = -3  # a NaN with a payload
    call(c)
    assert torch.equal(c["v_cache"][:, :, 4:7].view(torch.uint8), c["v"].view(torch.uint8))


def test_cache_bounds():
    c = make(torch.float32, seq=3, cache_len=9, cache_offset=6)  # offset + S == cache length: the last rows
    q_out, k_out = call(c)
    check_against_semantics(c, q_out, k_out, c["k_cache"], c["v_cache"], torch.float32)
    for bad in (7, -1):
        c = make(torch.float32, seq=3, cache_len=9, cache_offset=bad)
        with pytest.raises(ValueError, match=rf"mpskernels\.rope_kv_append: cache_offset {bad} \+ 3 new entries "
                                             r"must fit the cache length 9"):
            call(c)
        assert (c["k_cache"] == SENTINEL).all() and (c["v_cache"] == SENTINEL).all()


def arguments(**change):
    c = make(torch.float32, batch=1, q_heads=2, k_heads=2, seq=3, head_dim=8, cache_len=8, cache_offset=2)
    args = dict(q_out=torch.zeros_like(c["q"]), k_out=torch.zeros_like(c["k"]), k_cache=c["k_cache"],
                v_cache=c["v_cache"], q=c["q"], k=c["k"], v=c["v"], cos=c["cos"], sin=c["sin"], position_ids=None,
                offset=c["offset"], interleaved=False, cache_offset=2)
    for name, value in change.items():
        args[name] = value(args) if callable(value) else value
    return args


REFUSALS = {
    "q_out is k_out": (dict(k_out=lambda a: a["q_out"]), ValueError, "q_out and k_out share memory"),
    "k_out is the cache": (dict(k_out=lambda a: a["k_cache"][:, :, :3]), ValueError,
                           "k_out and k_cache share memory"),
    "caches shared": (dict(v_cache=lambda a: a["k_cache"]), ValueError, "k_cache and v_cache share memory"),
    "in place q": (dict(q_out=lambda a: a["q"]), ValueError, "q shares memory with q_out"),
    "k in the cache": (dict(k=lambda a: a["k_cache"][:, :, 2:5]), ValueError, "k shares memory with k_cache"),
    "v in the cache": (dict(v=lambda a: a["v_cache"][:, :, 2:5]), ValueError, "v shares memory with v_cache"),
    "cos in q_out": (dict(q_out=lambda a: a["cos"][:6].view(1, 2, 3, 8)), ValueError,
                     "cos shares memory with q_out"),
    "expanded k_out": (dict(k_out=lambda a: torch.zeros(1, 1, 3, 8).expand(1, 2, 3, 8)), ValueError,
                       "k_out has internal overlap"),
    "expanded cache": (dict(v_cache=lambda a: torch.zeros(1, 1, 8, 8).expand(1, 2, 8, 8)), ValueError,
                       "v_cache has internal overlap"),
    "grad leaf cache": (dict(k_cache=lambda a: torch.zeros(1, 2, 8, 8, requires_grad=True)), ValueError,
                        "k_cache requires grad"),
    "grad leaf output": (dict(q_out=lambda a: torch.zeros(1, 2, 3, 8, requires_grad=True)), ValueError,
                         "q_out requires grad"),
    "q_out shape": (dict(q_out=lambda a: torch.zeros(1, 2, 3, 9)), ValueError, r"q_out must have q's shape"),
    "k_out shape": (dict(k_out=lambda a: torch.zeros(1, 1, 3, 8)), ValueError, r"k_out must have k's shape"),
    "cache heads": (dict(k_cache=lambda a: torch.zeros(1, 3, 8, 8), v_cache=lambda a: torch.zeros(1, 3, 8, 8)),
                    ValueError, "batch and heads must agree"),
    "cache head_dim": (dict(k_cache=lambda a: torch.zeros(1, 2, 8, 6)), ValueError,
                       "k and v must have their cache's head_dim"),
    "rope offset": (dict(offset=20), ValueError, r"positions offset \+ \[0, 3\) with offset 20"),
    "position ids": (dict(position_ids=torch.tensor([0, 1, 99]), offset=0), ValueError, r"position_ids must lie in"),
    "output dtype": (dict(q_out=lambda a: torch.zeros(1, 2, 3, 8, dtype=torch.float16)), TypeError,
                     "all tensors must have one dtype"),
}


@pytest.mark.parametrize("backend", ["emulator", "reference"])
@pytest.mark.parametrize("case", REFUSALS)
def test_refusals_name_the_argument_and_write_nothing(case, backend):
    change, error, message = REFUSALS[case]
    args = arguments(**change)
    written = {n: args[n].detach().clone() for n in rope_kv.WRITTEN}
    with use_backend(backend), pytest.raises(error, match=r"mpskernels\.rope_kv_append: .*" + message):
        mpskernels.ops.rope_kv_append(*args.values())
    for n in rope_kv.WRITTEN:
        assert torch.equal(args[n].detach(), written[n]), n


def test_grad_leaves_are_written_under_no_grad():
    args = arguments(k_cache=lambda a: torch.full((1, 2, 8, 8), SENTINEL, requires_grad=True))
    with torch.no_grad(), use_backend("emulator"):
        mpskernels.ops.rope_kv_append(*args.values())
    assert torch.equal(args["k_cache"][:, :, 2:5], args["k_out"])
