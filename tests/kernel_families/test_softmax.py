"""softmax / log_softmax beyond the generated tests: variant choice, mask broadcasting, non-finite values, large
magnitudes, lane-order independence. Every kernel run is on the emulator, compared with a float64 reference."""

import math

import pytest
import torch

from mpskernels import launches, registry, runtime
from mpskernels.kernels import softmax as sm
from mpskernels.kernels.spec import TensorMeta
from mpskernels.runtime import use_backend
from mpskernels.tolerances import compare

OPS = ("softmax", "log_softmax")
NEG_INF = float("-inf")
# Row lengths of each variant, with its edges.
LENGTHS = {"simd": (1, 31, 33, 128, 512), "block": (513, 16384), "wide": (16385, 32768),
           "looped": (32769, 33000)}


@pytest.fixture(autouse=True)
def poisoned_outputs(monkeypatch):
    monkeypatch.setattr(registry, "poison_outputs", True)


def family(op):
    return sm.SOFTMAX if op == "softmax" else sm.LOG_SOFTMAX


def emulated(op, x, mask=None, scale=1.0):
    with use_backend("emulator"):
        return getattr(torch.ops.mpskernels, op)(x, mask, scale)


def expected(op, x, mask=None, scale=1.0, dtype=None):
    """The float64 reference, rounded to `dtype` when given (where the rounded value overflows, so must the op)."""
    ref = family(op).reference(x.double(), None if mask is None else mask.double(), scale)
    return ref if dtype is None else ref.to(dtype)


def check(op, x, mask=None, scale=1.0):
    got = emulated(op, x, mask, scale)
    assert got.dtype == x.dtype and got.shape == x.shape
    result = compare(got, expected(op, x, mask, scale, x.dtype), x.dtype)
    assert result.ok, f"{op} {tuple(x.shape)} mask {None if mask is None else tuple(mask.shape)}: {result}"
    return got


def variant(x, mask=None):
    plan = sm.make_plan("softmax")(TensorMeta.of(x), None if mask is None else TensorMeta.of(mask), 1.0)
    return plan.kernel.split("_")[1]


def randn(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


# ---- variant choice and geometry ----


@pytest.mark.parametrize("name, lengths", LENGTHS.items())
def test_plan_picks_the_variant_by_row_length(name, lengths):
    for cols in lengths:
        assert sm.variant_for(cols) == name


def test_unmasked_16bit_rows_past_half_the_block_capacity_take_the_wide_variant():
    boundary = sm.WIDE_16BIT_FROM_CHUNKS * 8  # 16384 halves
    for dtype in (torch.float16, torch.bfloat16):
        assert sm.variant_for(boundary, dtype) == "block" and sm.variant_for(boundary + 1, dtype) == "wide"
        assert sm.geometry(2048, 32000, dtype) == ("wide", 2048 * 512, 512)  # a vocabulary row: 512 threads
        assert sm.variant_for(boundary + 1, dtype, masked=True) == "block"  # held as fp32 copies: unchanged
    assert sm.variant_for(16384) == "block" and sm.variant_for(16385) == "wide"  # fp32 keeps block's full range


def test_geometry():
    assert sm.geometry(13, 33) == ("simd", 13 * 4, 64)  # 9 chunks: 4 lanes of 4 chunks, 8 rows per SIMD group
    assert sm.geometry(3, 1) == ("simd", 3, 32)  # one lane per row
    assert sm.geometry(100, 512) == ("simd", 100 * 32, 256)  # 128 chunks: a SIMD group, 8 rows per threadgroup
    assert sm.geometry(1000, 128, torch.float16) == ("simd", 4000, 256)  # 16 chunks: 4 lanes, every lane loads
    assert sm.geometry(1000, 128) == ("simd", 8000, 256)  # 32 chunks: 8 lanes, 4 rows per SIMD group
    assert sm.geometry(2, 513) == ("block", 2 * 64, 64)  # 129 chunks: 33 threads round up to two SIMD groups
    assert sm.geometry(2, 16384) == ("block", 2 * 1024, 1024)
    assert sm.geometry(2, 16385) == ("wide", 2 * 544, 544)  # 4097 chunks at 8 per thread: 513 threads
    assert sm.geometry(2, 32000) == ("wide", 2 * 1024, 1024)
    assert sm.geometry(2, 32769) == ("looped", 2 * 1024, 1024)
    assert [sm.row_lanes(c) for c in (1, 4, 16, 17, 32, 33, 64, 65, 512)] == [1, 1, 1, 2, 2, 4, 4, 8, 32]


def test_examples_exercise_every_variant_without_falling_back():
    for dtype in sm.SOFTMAX.dtypes:
        seen = set()
        for args in sm.SOFTMAX.examples(dtype):
            inputs = dict(zip(("x", "mask", "scale"), args))
            assert registry.unsupported_reason(sm.SOFTMAX, inputs) is None
            seen.add(variant(args[0], args[1]))
        assert seen == ({"simd", "block", "wide", "looped"} if dtype == torch.float32 else {"simd", "block", "wide"})


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("cols", [c for lengths in LENGTHS.values() for c in lengths])
def test_every_variant_at_its_edges(op, cols):
    rows = 3 if cols <= 128 else 1
    x = randn(rows, cols, seed=cols) * 3
    mask = torch.where(randn(cols, seed=cols + 1) > 1.5, NEG_INF, 0.0)
    mask[0] = 0.0  # at least one unmasked element per row
    check(op, x, None, 1.0)
    check(op, x, mask, 0.7)


# ---- masks ----


@pytest.mark.parametrize(
    "x_shape, mask_shape, groups",
    [
        ((2, 3, 4, 20), (2, 3, 4, 20), ((1, 24, 1),)),  # same shape
        ((2, 3, 4, 20), (20,), ()),  # one mask row for all
        ((2, 3, 4, 20), (1, 1, 1, 20), ()),
        ((2, 3, 4, 20), (4, 20), ((1, 4, 1),)),  # causal [Q, K] over [B, H, Q, K]
        ((2, 3, 4, 20), (2, 1, 1, 20), ((12, 2, 1),)),  # padding mask [B, 1, 1, K]
        ((2, 3, 4, 20), (2, 1, 4, 20), ((12, 2, 4), (1, 4, 1))),  # [B, 1, Q, K]
        ((2, 3, 4, 20), (1, 3, 1, 20), ((4, 3, 1),)),  # per head
        ((2, 1, 3, 20), (2, 1, 3, 20), ((1, 6, 1),)),  # size-1 dimensions join either side
        ((2, 1, 3, 600), (1, 1, 3, 600), ((1, 3, 1),)),  # block variant
    ],
)
@pytest.mark.parametrize("op", OPS)
def test_mask_broadcast_patterns(op, x_shape, mask_shape, groups):
    assert sm.mask_groups(x_shape, mask_shape) == groups
    x = randn(*x_shape, seed=1)
    mask = torch.where(randn(*mask_shape, seed=2) > 1.0, NEG_INF, randn(*mask_shape, seed=3))
    mask[..., 0] = 0.0
    check(op, x, mask, 0.5)


@pytest.mark.parametrize("op", OPS)
def test_same_shape_mask_on_long_rows(op):
    x = randn(3, 4200, seed=4)
    mask = torch.where(randn(3, 4200, seed=5) > 0.0, NEG_INF, randn(3, 4200, seed=6))
    mask[:, -1] = 0.0
    check(op, x, mask, 2.0)


@pytest.mark.parametrize("op", OPS)
def test_scale_applies_before_the_mask(op):
    x = randn(4, 40, seed=7)
    mask = randn(4, 40, seed=8) * 3
    got = check(op, x, mask, -1.5)
    torch.testing.assert_close(got, getattr(torch, op)(x * -1.5 + mask, dim=-1))
    uniform = emulated(op, x, None, 0.0)  # scale 0: every element alike
    torch.testing.assert_close(uniform, getattr(torch, op)(torch.zeros(4, 40), dim=-1))


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("cols", [33, 1500, 16500, 33000], ids=lambda c: sm.variant_for(c))
def test_masked_places_are_exactly_zero_or_minus_inf(op, cols):
    x = randn(2, cols, seed=9)
    mask = torch.zeros(2, cols)
    mask[0, : cols // 2] = NEG_INF  # the first threads of row 0 see nothing but -inf
    mask[1, 1::2] = NEG_INF
    got = check(op, x, mask)
    hidden = got[mask == NEG_INF]
    assert (hidden == (0.0 if op == "softmax" else NEG_INF)).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("cols", [1, 33, 1500, 16500, 33000], ids=lambda c: f"{sm.variant_for(c)}{c}")
def test_fully_masked_rows_are_nan_like_pytorch(op, cols, dtype):
    x = randn(3, cols, seed=10, dtype=dtype)
    mask = torch.zeros(3, cols)
    mask[1] = NEG_INF
    mask = mask.to(dtype)
    got = check(op, x, mask)  # NaN where the reference has NaN, and only there
    assert got[1].isnan().all() and not got[[0, 2]].isnan().any()
    assert getattr(torch, op)(torch.full((cols,), NEG_INF), dim=-1).isnan().all()  # what PyTorch does


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("cols", [33, 1500, 16500, 33000], ids=lambda c: sm.variant_for(c))
def test_inf_and_nan_inputs_give_nan_rows_like_pytorch(op, cols):
    x = randn(4, cols, seed=11)
    x[1, cols // 3] = float("inf")
    x[2, cols - 1] = float("nan")
    x[3, :] = NEG_INF
    got = check(op, x)
    assert got[1:].isnan().all() and not got[0].isnan().any()


# ---- magnitudes ----


@pytest.mark.parametrize(
    "dtype, magnitude",
    [(torch.float32, 1e30), (torch.float32, 1e4), (torch.float16, 6e4), (torch.bfloat16, 1e30)],
    ids=str,
)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("cols", [33, 1500, 16500, 33000], ids=lambda c: sm.variant_for(c))
def test_large_magnitudes_do_not_overflow(op, cols, dtype, magnitude):
    x = (randn(2, cols, seed=12).clamp(-1, 1) * magnitude).to(dtype)
    assert x.isfinite().all()
    got = check(op, x)
    assert not got.isnan().any()
    if op == "softmax":
        assert got.isfinite().all()
        torch.testing.assert_close(got.float().sum(-1), torch.ones(2), rtol=0, atol=1e-2)


@pytest.mark.parametrize(
    "dtype, low, spread",
    [(torch.float32, -1e4, 1.0), (torch.float32, -1e30, 1e29), (torch.float16, -3e4, 100.0),
     (torch.bfloat16, -1e30, 1e29)],
    ids=str,
)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("cols", [33, 1501, 16387, 32771], ids=lambda c: sm.variant_for(c))
def test_rows_far_below_zero_do_not_underflow(op, cols, dtype, low, spread):
    # Row lengths that leave threads with out-of-row slots: those must not pull the row maximum up to 0.
    x = (low + spread * randn(2, cols, seed=22).clamp(-1, 1)).to(dtype)
    got = check(op, x)
    assert got.isfinite().all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("cols", [120, 1500, 16387, 32771], ids=lambda c: sm.variant_for(c))
def test_16bit_probabilities_far_below_the_max_keep_their_relative_accuracy(cols, dtype):
    # Every probability that is a normal number of the dtype, down to e^-87 in bf16, keeps the dtype's relative
    # accuracy: a cutoff or flush to zero in the exponentials (a faster exp for 16-bit rows, say) that reached
    # into that range would fail here, where a tolerance scaled to the row's largest values would not see it.
    low = 1.4 * math.log(torch.finfo(dtype).tiny)  # bf16 -122, fp16 -13.6
    x = torch.linspace(0.0, low, cols).to(dtype).repeat(2, 1)
    got = emulated("softmax", x).double()
    want = expected("softmax", x)
    normal = want.abs() >= torch.finfo(dtype).tiny
    assert normal.float().mean() > 0.1  # the sum of a long row shifts some of its tail below the normals
    rel = ((got - want).abs() / want.abs())[normal]
    assert rel.max() <= torch.finfo(dtype).eps, rel.max()  # rounding once to the dtype: eps / 2


@pytest.mark.parametrize("op", OPS)
def test_near_constant_and_negative_rows(op):
    x = torch.full((2, 700), -3.0)
    x[1] = -1e-3 * torch.arange(700.0)
    check(op, x)


# ---- scheduling, inputs, shapes ----


@pytest.mark.parametrize("op", OPS)
def test_results_do_not_depend_on_lane_order(op, monkeypatch):
    cases = [(randn(13, 33, seed=13), randn(33, seed=14)), (randn(2, 257, seed=15), None),  # simd, 4 and 32 lanes
             (randn(37, 128, seed=20, dtype=torch.float16), None),  # simd, 4 lanes: 8 rows per SIMD group
             (randn(3, 1100, seed=21), None),  # block
             (randn(1, 16500, seed=16), randn(1, 16500, seed=17)),  # wide
             (randn(1, 33000, seed=24), None)]  # looped
    fixed = [emulated(op, x, m, 0.5) for x, m in cases]
    monkeypatch.setenv("MPSKERNELS_EMULATOR_ORDER", "shuffled")
    for (x, m), want in zip(cases, fixed):
        torch.testing.assert_close(emulated(op, x, m, 0.5), want, rtol=0, atol=0)


def test_inputs_are_left_unchanged():
    x, mask = randn(3, 300, seed=18), randn(300, seed=19)
    x0, mask0 = x.clone(), mask.clone()
    for op in OPS:
        emulated(op, x, mask, 2.0)
    assert torch.equal(x, x0) and torch.equal(mask, mask0)


def test_empty_inputs():
    for op in OPS:
        assert emulated(op, torch.empty(0, 5)).shape == (0, 5)
        assert emulated(op, torch.empty(3, 0)).shape == (3, 0)


@pytest.mark.parametrize(
    "x_shape, mask_shape",
    [((2, 4), (3,)), ((2, 4), (3, 4)), ((4,), (2, 4)), ((2, 4), (1, 2, 4))],
)
def test_masks_that_do_not_broadcast_to_x_are_rejected(x_shape, mask_shape):
    for op in OPS:
        with pytest.raises(ValueError, match=rf"mpskernels\.{op}: mask of shape .* does not broadcast to x's shape"):
            getattr(torch.ops.mpskernels, op)(torch.randn(x_shape), torch.randn(mask_shape), 1.0)


@pytest.mark.parametrize(
    "x_shape, mask_shape, reason",
    [
        ((), None, "no dimension"),
        ((2, 5), (2, 1), "broadcasts along the last dimension"),
        ((2, 5), (), "broadcasts along the last dimension"),
        ((2, 2, 2, 2, 2, 3), (2, 1, 2, 1, 2, 3), "more than 2 groups"),
    ],
)
def test_unsupported_masks_run_the_reference(x_shape, mask_shape, reason, monkeypatch):
    launched = []
    monkeypatch.setattr(runtime.BACKENDS["emulator"], "launch", lambda *a: launched.append(a))
    x = torch.randn(x_shape)
    mask = None if mask_shape is None else torch.randn(mask_shape)
    inputs = {"x": x, "mask": mask, "scale": 1.0}
    assert reason in registry.unsupported_reason(sm.SOFTMAX, inputs)
    for op in OPS:
        got = emulated(op, x, mask, 1.0)
        torch.testing.assert_close(got, family(op).reference(x, mask, 1.0))
    assert launched == []


def test_reference_matches_pytorch_and_keeps_float64():
    x, mask = randn(3, 10, seed=20), randn(3, 10, seed=21)
    torch.testing.assert_close(sm.softmax_reference(x, mask, 0.5), torch.softmax(x * 0.5 + mask, -1))
    torch.testing.assert_close(sm.log_softmax_reference(x, None, 2.0), torch.log_softmax(x * 2.0, -1))
    assert sm.softmax_reference(x.double(), None, 1.0).dtype == torch.float64
    half = sm.softmax_reference(x.half(), mask.half(), 1.0)
    assert half.dtype == torch.float16
    assert math.isclose(float(half.float().sum(-1)[0]), 1.0, abs_tol=1e-2)


def test_mask_and_scale_default_to_none_and_one():
    # Relies on the registry filling schema defaults (OpRunner.fill_defaults) for calls that leave them out.
    from mpskernels import ops

    x, mask = randn(3, 40, seed=23), randn(40, seed=24)
    with use_backend("emulator"):
        torch.testing.assert_close(torch.ops.mpskernels.softmax(x), torch.softmax(x, -1))
        torch.testing.assert_close(ops.log_softmax(x, scale=0.5), torch.log_softmax(x * 0.5, -1))
        torch.testing.assert_close(ops.softmax(x, mask=mask), torch.softmax(x + mask, -1))
        torch.testing.assert_close(torch.ops.mpskernels.log_softmax(x, mask, scale=2.0),
                                   torch.log_softmax(2.0 * x + mask, -1))


# ---- the 16-byte fast path and its guarded tail ----


def offset_view(t, offset):
    """t's values in a contiguous tensor bound `offset` elements into its storage (never 16-byte aligned)."""
    flat = torch.empty(t.numel() + offset, dtype=t.dtype)
    flat[offset:] = t.reshape(-1)
    return flat[offset:].view(t.shape)


@pytest.mark.parametrize("bounds", ["guarded", "own-memory"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_fast_path_and_tail(dtype, bounds, monkeypatch):
    """Row lengths at whole 16-byte chunks, one element more and one fewer, and half a chunk more (rows alternate
    between aligned and not), in every variant, with and without a mask; on the emulator's guarded copies (whose
    alignment follows their size) and on the tensors' own memory, also bound at an element offset."""
    monkeypatch.setenv("MPSKERNELS_EMULATOR_BOUNDS", "1" if bounds == "guarded" else "0")
    n = 16 // torch.empty((), dtype=dtype).element_size()
    chunk_counts = (8, 40, sm.SIMD_ROW_CHUNKS + 2) + ((sm.BLOCK_ROW_CHUNKS + 2, sm.WIDE_ROW_CHUNKS + 2)
                                                      if dtype == torch.float32 else ())
    seen = set()
    before = launches.count()
    for chunks in chunk_counts:
        for cols in (chunks * n - 1, chunks * n, chunks * n + 1, chunks * n + n // 2):
            seen.add(sm.variant_for(cols, dtype))
            for offset in (0, 1):
                x = offset_view(randn(4, cols, seed=cols, dtype=dtype), offset)
                mask = offset_view(randn(4, cols, seed=cols + 1, dtype=dtype), offset) if offset else None
                for op in OPS:
                    check(op, x, mask, 0.5)
    assert seen == ({"simd", "block", "wide", "looped"} if dtype == torch.float32 else {"simd", "block"})
    assert launches.count() == before + len(chunk_counts) * 4 * 2 * len(OPS)  # no call fell back


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_full_simd_rows(dtype):
    """Rows of exactly row_lanes x ROW_CHUNKS whole chunks take softmax_simd's path without a guard per
    element (metal/softmax.metal, full_simd_row) when aligned, and the guarded path at an element offset: 1, 4 and
    32 lanes a row, without a mask and with one broadcast over the leading dimension, in both ops, against float64
    written from the ops' definitions (torch's op in float64) and the family's reference."""
    n = 16 // torch.empty((), dtype=dtype).element_size()
    before = launches.count()
    for lanes in (1, 4, 32):
        cols = lanes * sm.ROW_CHUNKS * n
        assert sm.variant_for(cols, dtype) == "simd" and sm.row_lanes(cols, dtype) == lanes
        x = randn(3, 2, cols, seed=lanes, dtype=dtype) * 4
        mask = randn(2, cols, seed=lanes + 1, dtype=dtype)
        for offset in (0, 1):
            xs = offset_view(x, offset)
            for m in (None, mask):
                logits = xs.double() * 0.5 + (0 if m is None else m.double())
                for op in OPS:
                    got = check(op, xs, m, 0.5)
                    assert compare(got, getattr(torch, op)(logits, -1).to(dtype), dtype).ok, (op, cols, offset)
    assert launches.count() == before + 3 * 2 * 2 * len(OPS)  # no call fell back


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_unmasked_16bit_rows_held_as_bits(dtype):
    """16-bit rows without a mask are held as their loaded bits and turned into logits again at each use
    (metal/softmax.metal, block_row_held_bits): the wide variant's edges (a partial last chunk, and 3 short of its
    capacity), aligned and at an element offset, with a scale and with a cap, against float64 and PyTorch's op."""
    n = 8
    before = launches.count()
    for cols in (sm.WIDE_16BIT_FROM_CHUNKS * n + 1, sm.BLOCK_ROW_CHUNKS * n + 1, sm.WIDE_ROW_CHUNKS * n - 3):
        assert sm.variant_for(cols, dtype) == "wide"
        for offset in (0, 1):
            x = offset_view(randn(1, cols, seed=cols + offset, dtype=dtype) * 4, offset)
            for op in OPS:
                check(op, x, None, 0.5)
                with use_backend("emulator"):
                    capped = getattr(torch.ops.mpskernels, op)(x, None, 0.5, 1.5)
                want = getattr(torch, op)(torch.tanh(x.double() * 0.5 / 1.5) * 1.5, -1)
                assert compare(capped, want.to(dtype), dtype).ok
    assert launches.count() == before + 3 * 2 * len(OPS) * 2  # no call fell back


# ---- soft-capping (Gemma-2's attention scores) ----


def gemma_scores_softmax(scores, mask, scaling, softcap):
    """Gemma-2's eager attention from `scores = q k^T` on, in float64: * scaling, / softcap, tanh, * softcap,
    + mask, softmax (transformers' modeling_gemma2.eager_attention_forward, written out here)."""
    s = scores.double() * scaling
    s = torch.tanh(s / softcap) * softcap
    if mask is not None:
        s = s + mask.double()
    return torch.softmax(s, dim=-1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("cols", [7, 64, 1500, 17000])  # simd (unaligned), simd, block, wide/block
def test_softcap_matches_gemmas_eager_attention(dtype, cols):
    scores = randn(2, 3, 2, cols, seed=cols, dtype=torch.float32) * 80  # beyond the cap: tanh saturates
    mask = torch.zeros(2, 1, 2, cols)
    mask[0, :, 0, cols // 2:] = torch.finfo(torch.float32).min  # HF's additive mask: finfo.min where hidden
    mask[1, :, 1, :1] = float("-inf")
    x, m = scores.to(dtype), mask.to(dtype)
    with use_backend("emulator"):
        got = torch.ops.mpskernels.softmax(x, m, 0.0625, 50.0)
    want = gemma_scores_softmax(x, m, 0.0625, 50.0)
    assert compare(got, want.to(dtype), dtype).ok
    native = torch.softmax(torch.tanh(x.float() * 0.0625 / 50.0) * 50.0 + m.float(), -1)  # PyTorch's own ops
    assert compare(got, native.to(dtype), dtype).ok
    assert emulated("softmax", x, m, 0.0625).sub(got).abs().max() > 1e-3  # the cap changed the result


def test_softcap_bounds_infinite_logits_and_is_checked():
    x = torch.tensor([[float("inf"), float("-inf"), 0.0, 1.0]])
    with use_backend("emulator"):
        got = torch.ops.mpskernels.log_softmax(x, None, 1.0, 2.0)
    want = torch.log_softmax(torch.tensor([[2.0, -2.0, 0.0, 2.0 * math.tanh(0.5)]], dtype=torch.float64), -1)
    torch.testing.assert_close(got, want.float())
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match=r"mpskernels\.softmax: softcap must be a (positive|finite)"):
            torch.ops.mpskernels.softmax(x, None, 1.0, bad)
