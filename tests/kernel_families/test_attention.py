"""attention beyond the generated tests: the reference's semantics against PyTorch SDPA, the prefill/decode choice,
the decode lane layout and KV split (block boundaries, GQA row groups, one and two passes), KV-cache tails, masks
(broadcast shapes, -inf, finfo.min, boolean, fully masked rows), long KV lengths, large scores, lane-order independence, usage errors and fallbacks. Every kernel run is on the emulator,
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
    up = lambda t: t if t is None or t.dtype == torch.bool else t.double()  # noqa: E731
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
    keep = mask > -0.5
    torch.testing.assert_close(attn.reference(q, k, v, keep, False, None, None),
                               F.scaled_dot_product_attention(q, full_k, full_v, attn_mask=keep))


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


def test_decode_layout_loads_16_bytes_per_lane():
    layout = attn.DecodeLayout.of
    assert layout(torch.float32, 128) == attn.DecodeLayout(4, 32, 4)  # one key per SIMD group step
    assert layout(torch.float16, 128) == attn.DecodeLayout(8, 16, 4)  # two keys per step
    assert layout(torch.bfloat16, 64) == attn.DecodeLayout(8, 8, 4)  # four keys per step
    assert layout(torch.float16, 80) == attn.DecodeLayout(8, 16, 4)  # 10 of 16 lanes hold a chunk
    assert layout(torch.float32, 96) == attn.DecodeLayout(4, 32, 4)  # 24 of 32
    # blocks are whole tiles of 32 keys (a SIMD group's L steps of 32 / L keys), whatever the layout, or of 8 keys
    # under decode_short_tiles
    assert layout(torch.float16, 128).step == layout(torch.float32, 64).step == attn.DECODE_TILE == 32
    assert layout(torch.float32, 128, attn.DECODE_SHORT_TILE).step == attn.DECODE_SHORT_TILE == 8


@pytest.mark.parametrize("kv_len, threadgroups, step, min_keys", [
    (4000, 8, 8, 65), (16000, 64, 8, 65), (512, 8, 16, 32), (33, 1, 4, 32), (32768, 8, 4, 65), (70000, 1, 8, 32),
    (100, 2048, 8, 32)])
def test_decode_split_rule(kv_len, threadgroups, step, min_keys):
    blocks, block_len = attn.decode_split(kv_len, threadgroups, step, min_keys)
    assert block_len % step == 0 and (blocks - 1) * block_len < kv_len <= blocks * block_len  # no empty block
    assert blocks <= attn.DECODE_MAX_BLOCKS
    if blocks > 1:
        assert block_len >= min_keys
        assert (blocks - 1) * threadgroups < attn.DECODE_TARGET_THREADGROUPS  # no more blocks than needed
        assert block_len % (step * attn.DECODE_BLOCK_TILES) == 0  # every SIMD group of a block gets one share
    elif threadgroups < attn.DECODE_TARGET_THREADGROUPS:
        # one pass only for a short KV length (or one that fits one block of equal SIMD-group shares)
        assert kv_len < 2 * min_keys or kv_len <= step * attn.DECODE_BLOCK_TILES


def test_decode_blocks_read_8_times_their_partial_results():
    # 4 rows of D = 128: 2 x 4 x 130 fp32 of partials per block, 512 bytes of bf16 K and V per key
    assert attn.decode_min_block_keys(4, 128, torch.bfloat16) == 65
    assert attn.decode_min_block_keys(8, 128, torch.float32) == 65
    assert attn.decode_min_block_keys(1, 64, torch.float16) == attn.DECODE_MIN_BLOCK_KEYS  # 17 < 32


def test_decode_plan_two_passes_with_declared_scratch():
    q, k = torch.empty(1, 32, 1, 128, dtype=torch.float16), torch.empty(1, 8, 4096, 128, dtype=torch.float16)
    plan = kernel_for(q, k, kv_len=4000)
    blocks, block_len = attn.decode_split(4000, 8, 32, 65)  # 8 KV heads of 4 query rows each: one row group
    assert (blocks, block_len) == (32, 128)  # 96-key blocks (3 tiles for 4 SIMD groups) round up to 4 tiles
    # 256 threadgroups of 4 rows are below DECODE_ROW_SPLIT_BELOW: 2 rows each, 2 row groups per KV head and block
    assert attn.decode_grid(1, 8, 4, 4000, 128, torch.float16) == attn.DecodeGrid(2, 2, 32, 128)
    assert plan.kernel == "attention_decode_split_d128_float16" and plan.buffers[17].value == 2
    assert plan.threads == (blocks * 2 * attn.DECODE_THREADS, 8, 1) and plan.buffers[16].value == block_len
    assert [d.kernel for d in plan.dispatches] == ["attention_decode_split_d128_float16",
                                                   "attention_decode_merge_d128_float16"]
    assert plan.then[0].threads == (32 * attn.MERGE_THREADS, 1, 1) and plan.then[0].buffers[4].value == blocks
    assert {s.name: (s.shape, s.dtype) for s in plan.scratch} == {
        "o_part": ((32, blocks, 128), torch.float32), "m_part": ((32, blocks), torch.float32),
        "l_part": ((32, blocks), torch.float32)}
    one = kernel_for(q, k, kv_len=40)  # one block: one pass straight into out
    assert one.kernel == "attention_decode_d128_float16" and one.then == () and one.scratch == ()
    assert one.buffers[16].value >= 40


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("kv_len, rows, tile", [(512, 1, 8), (2048, 2, 8), (8192, 4, 32)])
def test_decode_small_grids_give_every_simd_group_a_tile(dtype, kv_len, rows, tile):
    # B1 Hq32/Hk8 D128: blocks of 96 (bf16) or 64 (fp32) keys left 1 or 2 of a threadgroup's 4 SIMD groups idle.
    # N512 and N2048 (32 and 128 threadgroups of 4 rows) take 1 row per threadgroup with 32-key tiles; N8192 (512)
    # keeps 4. N512, still 128 threadgroups at 1 row, takes tiles of 8 keys, and so does N2048, whose one-row plan
    # re-read K and V four times: on 8-key tiles it keeps 2 rows per threadgroup.
    q, k = torch.empty(1, 32, 1, 128, dtype=dtype), torch.empty(1, 8, kv_len, 128, dtype=dtype)
    plan = kernel_for(q, k)
    blocks, block_len = plan.then[0].buffers[4].value, plan.buffers[16].value
    assert plan.constants["decode_short_tiles"] == (tile == attn.DECODE_SHORT_TILE)
    assert block_len % (attn.DECODE_SIMD_GROUPS * tile) == 0  # whole tiles for every SIMD group, none idle
    assert plan.buffers[17].value == rows
    assert blocks == kv_len // block_len and plan.threads == (blocks * (4 // rows) * attn.DECODE_THREADS, 8, 1)


@pytest.mark.parametrize("batch, kv_heads, group_rows, n, dtype", [
    (1, 8, 4, 512, torch.bfloat16), (8, 8, 4, 512, torch.float32), (1, 8, 4, 32768, torch.bfloat16),
    (1, 2, 3, 300, torch.float16), (4, 1, 12, 100, torch.float32), (1, 32, 1, 512, torch.bfloat16)])
def test_decode_rows_per_threadgroup_rule(batch, kv_heads, group_rows, n, dtype):
    grid = attn.decode_grid(batch, kv_heads, group_rows, n, 128, dtype)
    threadgroups = grid.blocks * grid.row_groups * kv_heads * batch
    assert grid.rows_per_group in (1, 2, 4) and grid.row_groups == -(-group_rows // grid.rows_per_group)
    if grid.rows_per_group > 1 and grid.rows_per_group < 2 * group_rows:  # could have halved: the grid is big
        assert threadgroups >= attn.DECODE_ROW_SPLIT_BELOW
    if grid.rows_per_group < attn.DECODE_ROWS:  # halved: with twice the rows, the grid was small
        wider = -(-group_rows // (2 * grid.rows_per_group))
        min_keys = attn.decode_min_block_keys(min(2 * grid.rows_per_group, group_rows), 128, dtype)
        tile = attn.DECODE_SHORT_TILE if grid.short_tiles else attn.DECODE_TILE
        blocks, _ = attn.decode_split(n, batch * kv_heads * wider, tile, min_keys)
        assert blocks * wider * kv_heads * batch < attn.DECODE_ROW_SPLIT_BELOW


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("start_rows, group_rows", [(2, 4), (2, 3), (1, 4), (4, 3)])
def test_decode_threadgroups_of_fewer_rows(monkeypatch, fresh_plans, dtype, start_rows, group_rows):
    """Row groups of 2 (full, and 2 + 1 for 3 rows), of 1, and one partial group of 3 in 4, over a split."""
    monkeypatch.setattr(attn, "DECODE_ROWS", start_rows)  # the host's first choice; the kernel holds up to 4
    monkeypatch.setattr(attn, "DECODE_ROW_SPLIT_BELOW", 0)  # keep it
    monkeypatch.setattr(attn, "short_tiles_pay", lambda *plan: False)  # and tiles of 32 keys
    monkeypatch.setattr(attn, "DECODE_MIN_BLOCK_KEYS", 16)
    monkeypatch.setattr(attn, "DECODE_PARTIAL_SHARE", 1)
    monkeypatch.setattr(attn, "DECODE_BLOCK_TILES", 1)
    q, k, v = qkv(2, group_rows, 1, 1, 80, 64, dtype=dtype, seed=group_rows)
    plan = kernel_for(q, k, kv_len=75)
    assert plan.buffers[17].value == start_rows and len(plan.dispatches) == 2
    check(q, k, v, randn(2, group_rows, 1, 80, seed=2, dtype=dtype), False, None, 75)


@pytest.fixture
def small_blocks(monkeypatch, fresh_plans):
    """Blocks of one 32-key tile so that short KV lengths split (their grids are small, but keep 32-key tiles)."""
    monkeypatch.setattr(attn, "short_tiles_pay", lambda *plan: False)
    monkeypatch.setattr(attn, "DECODE_MIN_BLOCK_KEYS", 16)
    monkeypatch.setattr(attn, "DECODE_BLOCK_TILES", 1)
    monkeypatch.setattr(attn, "DECODE_PARTIAL_SHARE", 1)
    monkeypatch.setattr(attn, "DECODE_TARGET_THREADGROUPS", 4096)


# (kv_len, blocks, keys per block): one block (short, exact), a tile over, one fewer than two tiles, an exact split,
# one more, and many blocks with a partial last one (a block is whole tiles of 32 keys).
SPLITS = [(15, 1, 32), (32, 1, 32), (33, 2, 32), (63, 2, 32), (64, 2, 32), (65, 3, 32), (200, 7, 32)]


@pytest.mark.parametrize("kv_len, blocks, block_len", SPLITS)
def test_decode_split_boundaries(small_blocks, kv_len, blocks, block_len):
    q, k, v = qkv(1, 4, 1, 1, 210, 64, seed=kv_len)
    k[:, :, kv_len:] = float("nan")  # past kv_len: never read, however the blocks fall
    plan = kernel_for(q, k, kv_len=kv_len)
    assert (plan.buffers[16].value, len(plan.dispatches)) == (block_len, 1 if blocks == 1 else 2)
    if blocks > 1:
        assert plan.then[0].buffers[4].value == blocks
    mask = randn(1, 4, 1, 210, seed=3)
    mask[..., 30:34] = NEG_INF  # across the first block boundary
    check(q, k, v, mask, False, None, kv_len)


def test_decode_merge_of_many_blocks(small_blocks):
    # 35 blocks: more than the merge's 8 SIMD groups take in 4 rounds, so each sums 4 or 5 of them in turn.
    q, k, v = qkv(1, 4, 1, 1, 1100, 64, seed=11)
    plan = kernel_for(q, k, kv_len=1100)
    assert (plan.buffers[16].value, plan.then[0].buffers[4].value) == (32, 35)
    check(q, k, v, randn(1, 4, 1, 1100, seed=12), False, None, 1100)


def test_decode_blocks_of_four_tiles_with_a_short_last_block(small_blocks, monkeypatch):
    # blocks of 4 tiles (one per SIMD group); the last holds 44 keys: a partial tile and two idle SIMD groups
    monkeypatch.setattr(attn, "DECODE_BLOCK_TILES", attn.DECODE_SIMD_GROUPS)
    q, k, v = qkv(1, 4, 1, 1, 310, 64, seed=5)
    k[:, :, 300:] = float("nan")
    v[:, :, 300:] = float("nan")
    plan = kernel_for(q, k, kv_len=300)
    assert (plan.buffers[16].value, plan.then[0].buffers[4].value) == (128, 3)
    mask = randn(1, 4, 1, 310, seed=4)
    mask[..., 126:131] = NEG_INF  # across the first block boundary
    check(q, k, v, mask, False, None, 300)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("q_heads, kv_heads, q_len, head_dim", [(2, 2, 1, 128), (4, 1, 1, 64), (8, 1, 1, 128),
                                                                (8, 2, 3, 64)])
def test_decode_gqa_groups_over_split_blocks(small_blocks, dtype, q_heads, kv_heads, q_len, head_dim):
    """GQA 1, 4 and 8 (8 query rows: two row groups of 4), and 3 tokens of 4 heads (12 rows: three)."""
    q, k, v = qkv(2, q_heads, kv_heads, q_len, 100, head_dim, dtype=dtype, seed=q_heads + head_dim)
    assert len(kernel_for(q, k, kv_len=97).dispatches) == 2
    check(q, k, v, None, True, None, 97)
    check(q, k, v, randn(2, q_heads, q_len, 100, seed=1, dtype=dtype), False, 0.3, 97)


@pytest.mark.parametrize("dtype, head_dim", [(torch.float32, 96), (torch.bfloat16, 128), (torch.float16, 64)],
                         ids=str)
@pytest.mark.parametrize("kv_len", [255, 256, 257])
@pytest.mark.parametrize("q_heads", [3, 4])
def test_one_pass_decode_over_several_tiles_per_simd_group(monkeypatch, fresh_plans, dtype, head_dim, kv_len,
                                                           q_heads):
    """One block of two rounds of tiles (4 SIMD groups x 32 keys each): full tiles fold unguarded, then the last
    tile is one key short, absent or one key long; 3 query rows of 4 (a partial row group: every row loop checks
    the count) or 4 (none does), a mask, and a cache tail that poisons any read past kv_len. D = 96 leaves 8 of 32
    lanes idle (float32)."""
    monkeypatch.setattr(attn, "DECODE_TARGET_THREADGROUPS", 1)
    monkeypatch.setattr(attn, "DECODE_ROW_SPLIT_BELOW", 0)  # all q_heads rows in one threadgroup
    q, k, v = qkv(1, q_heads, 1, 1, 260, head_dim, dtype=dtype, seed=kv_len)
    k[:, :, kv_len:] = float("nan")
    v[:, :, kv_len:] = float("inf")
    assert kernel_for(q, k, kv_len=kv_len).then == ()
    got = check(q, k, v, randn(1, q_heads, 1, 260, seed=4, dtype=dtype), False, None, kv_len)
    assert got.isfinite().all()


@pytest.mark.parametrize("tiles, kv_len, last_block", [("small_blocks", 64, 32), ("short_tiles", 150, 128)])
def test_decode_fully_masked_rows_and_blocks_over_a_split(request, tiles, kv_len, last_block):
    """32-key tiles in blocks of one, and 8-key tiles in blocks of 4 (short_tiles: below); the first block is 32
    keys either way."""
    request.getfixturevalue(tiles)
    q, k, v = qkv(1, 4, 1, 2, kv_len, 64)
    mask = randn(1, 4, 2, kv_len, seed=2)
    mask[0, 0, 1, :] = NEG_INF  # a whole row: NaN like softmax
    mask[0, 1, :, :last_block] = NEG_INF  # every block but the last
    mask[0, 2, :, 32:] = NEG_INF  # every block but the first
    mask[0, 3, :, 7::8] = NEG_INF  # the last key of every 8
    plan = kernel_for(q, k, mask)
    assert len(plan.dispatches) == 2 and plan.constants["decode_short_tiles"] == (tiles == "short_tiles")
    got, want = emulated(q, k, v, mask), expected(q, k, v, mask)
    assert got[0, 0, 1].isnan().all() and got.isnan().sum() == want.isnan().sum() == 64
    assert compare(got, want, q.dtype).ok


def test_decode_finfo_min_mask_over_a_split(small_blocks):
    q, k, v = qkv(1, 2, 1, 1, 64, 64, dtype=torch.bfloat16)
    mask = torch.zeros(1, 2, 1, 64)
    mask[0, 0, :, 20:] = torch.finfo(torch.bfloat16).min  # visible keys only in the first block
    mask[0, 1] = torch.finfo(torch.bfloat16).min  # uniform weights over every key
    check(q, k, v, mask.to(torch.bfloat16), False, None, 60)


# ---- short tiles (decode_short_tiles): split grids that stay small take tiles of 8 keys ----

# Hq32/Hk8 D128: (batch, kv_len, dtype, threadgroups with 32-key tiles, threadgroups planned, 8-key tiles)
TILE_PLANS = [
    (1, 256, torch.bfloat16, 64, 256, True), (1, 512, torch.float32, 128, 512, True),
    (1, 512, torch.bfloat16, 128, 512, True), (1, 1024, torch.float32, 256, 512, True),
    (1, 1024, torch.float16, 256, 1024, True), (2, 512, torch.bfloat16, 256, 1024, True),
    (4, 256, torch.float32, 256, 512, True),
    # one row per threadgroup of the four a KV head has: 2 rows a threadgroup on short tiles, no fewer threadgroups
    (1, 2048, torch.float32, 512, 1024, True), (4, 512, torch.bfloat16, 512, 512, True),
    (1, 2048, torch.bfloat16, 512, 512, True), (8, 256, torch.float16, 512, 512, True),
    (1, 128, torch.bfloat16, 32, 32, False),  # one pass: short tiles would add the merge dispatch
    (4, 2048, torch.bfloat16, 512, 512, False), (8, 512, torch.float32, 512, 512, False),
    (1, 8192, torch.float16, 512, 512, False), (8, 32768, torch.bfloat16, 1024, 1024, False)]


@pytest.mark.parametrize("batch, kv_len, dtype, before, after, short", TILE_PLANS, ids=str)
def test_decode_short_tile_plans(monkeypatch, batch, kv_len, dtype, before, after, short):
    grid = attn.decode_grid(batch, 8, 4, kv_len, 128, dtype)
    long = attn.decode_grid(batch, 8, 4, kv_len, 128, dtype, attn.DECODE_TILE)
    assert not long.short_tiles and long.threadgroups(batch, 8) == before
    assert grid.short_tiles == short and grid.threadgroups(batch, 8) == after
    if not short:
        assert grid == long


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
def test_decode_on_short_tiles_where_one_row_per_threadgroup_was_planned(dtype):
    """B1 Hq32/Hk8 N2048 D64: the 32-key plan reaches its 512 threadgroups only at one row each, so the plan takes
    8-key tiles with 2 rows per threadgroup (short_tiles_pay); the result, at the plan as shipped, against float64
    and PyTorch's SDPA."""
    q, k, v = qkv(1, 32, 8, 1, 2048, 64, dtype=dtype, seed=5)
    plan = kernel_for(q, k)
    assert plan.constants["decode_short_tiles"] and plan.buffers[17].value == 2
    check_against_sdpa(q, k, v, None, 2048)


def test_short_tiles_only_where_a_split_grid_stays_small(monkeypatch):
    """Over batches, GQA shapes, KV lengths, dtypes and head dims: a plan takes 8-key tiles exactly where the
    32-key plan splits yet stays below DECODE_SHORT_TILES_BELOW threadgroups or left one row per threadgroup of a
    KV head's several; it then has more threadgroups or fewer row groups, blocks of whole 4-tile shares, and still
    splits. Every other plan is the 32-key one."""
    shapes = [(b, hk, g, n, dtype, d) for b in (1, 2, 4, 8) for hk, g in ((8, 4), (32, 1), (2, 6), (1, 8))
              for n in (40, 128, 129, 200, 512, 1000, 3000, 20000, 70000) for dtype in (torch.float32, torch.bfloat16)
              for d in (64, 128)]
    changed = 0
    for batch, kv_heads, group_rows, n, dtype, head_dim in shapes:
        grid = attn.decode_grid(batch, kv_heads, group_rows, n, head_dim, dtype)
        long = attn.decode_grid(batch, kv_heads, group_rows, n, head_dim, dtype, attn.DECODE_TILE)
        one_row = long.rows_per_group == 1 and group_rows > 1
        small = long.blocks > 1 and (long.threadgroups(batch, kv_heads) < attn.DECODE_SHORT_TILES_BELOW or one_row)
        assert grid.short_tiles == small
        if small:
            changed += 1
            more = grid.threadgroups(batch, kv_heads) > long.threadgroups(batch, kv_heads)
            assert (more or grid.row_groups < long.row_groups) and grid.blocks > 1
            assert grid.block_len % (attn.DECODE_SHORT_TILE * attn.DECODE_BLOCK_TILES) == 0
        else:
            assert grid == long
    assert 0 < changed < len(shapes)


@pytest.fixture
def short_tiles(monkeypatch, fresh_plans):
    """8-key tiles on small grids, in blocks of 4 tiles (one per SIMD group) as planned: a KV length past 128 splits
    (so does the 32-key plan, which short tiles need) into blocks of 32 keys."""
    monkeypatch.setattr(attn, "DECODE_SHORT_TILES_BELOW", 1 << 30)
    monkeypatch.setattr(attn, "DECODE_MIN_BLOCK_KEYS", 16)
    monkeypatch.setattr(attn, "DECODE_PARTIAL_SHARE", 1)
    monkeypatch.setattr(attn, "DECODE_TARGET_THREADGROUPS", 4096)


def check_against_sdpa(q, k, v, mask, kv_len):
    """check() against the float64 reference, then the same result against PyTorch's SDPA in float64 (not causal:
    SDPA's is_causal puts the queries first)."""
    got = check(q, k, v, mask, False, None, kv_len)
    group = q.shape[1] // k.shape[1]
    keys, values = (t[:, :, :kv_len].double().repeat_interleave(group, dim=1) for t in (k, v))
    if mask is not None:
        mask = mask[..., :kv_len] if mask.dtype == torch.bool else mask[..., :kv_len].double()
    result = compare(got, F.scaled_dot_product_attention(q.double(), keys, values, attn_mask=mask), q.dtype)
    assert result.ok, f"against SDPA: {result}"
    return got


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("head_dim", attn.HEAD_DIMS)
@pytest.mark.parametrize("kv_len", [135, 136, 137])
@pytest.mark.parametrize("rows", [1, 4])
def test_short_tiles_every_head_dim(short_tiles, monkeypatch, dtype, head_dim, kv_len, rows):
    """5 blocks of 4 tiles of 8 keys, the last block 7, 8 or 9 keys (one partial tile; one full tile; a full tile
    and a 1-key tile); 4 query heads of a KV head in one threadgroup (rows 4: no row checks) or one each (every
    row loop checks); batch 2, an additive mask with -inf across a block boundary, a cache tail that poisons any
    read past kv_len. Every layout: 2 (half D64), 4 (half D80-D128, float D64) and 8 steps (float D80-D128)."""
    if rows == 4:
        monkeypatch.setattr(attn, "DECODE_ROW_SPLIT_BELOW", 0)
    q, k, v = qkv(2, 4, 1, 1, 140, head_dim, dtype=dtype, seed=kv_len + head_dim)
    k[:, :, kv_len:] = float("nan")
    v[:, :, kv_len:] = float("inf")
    plan = kernel_for(q, k, kv_len=kv_len)
    assert plan.constants["decode_short_tiles"] and plan.kernel.startswith("attention_decode_split")
    assert (plan.buffers[16].value, plan.buffers[17].value, plan.then[0].buffers[4].value) == (32, rows, 5)
    mask = randn(2, 4, 1, 140, seed=3, dtype=dtype)
    mask[..., 30:34] = NEG_INF
    assert check_against_sdpa(q, k, v, mask, kv_len).isfinite().all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("head_dim", [64, 128])
@pytest.mark.parametrize("kv_len", [136, 137])
def test_short_tiles_with_boolean_masks(short_tiles, dtype, head_dim, kv_len):
    q, k, v = qkv(2, 4, 1, 1, 140, head_dim, dtype=dtype, seed=kv_len)
    keep = torch.rand(2, 1, 1, 140, generator=torch.Generator().manual_seed(kv_len)) > 0.3  # broadcast over heads
    keep[..., :2] = True
    keep[1, ..., 32:64] = False  # all of block 1
    assert kernel_for(q, k, keep, kv_len).constants["decode_short_tiles"]
    check_against_sdpa(q, k, v, keep, kv_len)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("q_heads, kv_heads, q_len, head_dim", [(2, 2, 1, 128), (8, 1, 1, 64), (3, 1, 2, 96),
                                                                (8, 2, 3, 80)])
def test_short_tiles_gqa_rows_and_causal(short_tiles, monkeypatch, dtype, q_heads, kv_heads, q_len, head_dim):
    """GQA 1 and 8 (two row groups of 4), 2 tokens of 3 heads (6 rows: 4 + a partial 2) and 3 tokens of 4 heads
    (12 rows: three groups), causal and with a mask and a scale."""
    monkeypatch.setattr(attn, "DECODE_ROW_SPLIT_BELOW", 0)
    q, k, v = qkv(2, q_heads, kv_heads, q_len, 170, head_dim, dtype=dtype, seed=q_heads + head_dim)
    assert kernel_for(q, k, kv_len=167).constants["decode_short_tiles"]
    check(q, k, v, None, True, None, 167)
    check(q, k, v, randn(2, q_heads, q_len, 170, seed=1, dtype=dtype), False, 0.3, 167)


@pytest.mark.parametrize("dtype, head_dim", [(torch.float32, 128), (torch.bfloat16, 64), (torch.float16, 96)],
                         ids=str)
@pytest.mark.parametrize("kv_len", [199, 200, 201])
def test_short_tiles_several_rounds_per_simd_group(short_tiles, monkeypatch, dtype, head_dim, kv_len):
    """Blocks of 96 keys: each SIMD group loops over 3 full tiles; the last block holds 7, 8 or 9 keys."""
    monkeypatch.setattr(attn, "DECODE_MIN_BLOCK_KEYS", 64)
    q, k, v = qkv(1, 4, 1, 1, 210, head_dim, dtype=dtype, seed=kv_len)
    k[:, :, kv_len:] = float("nan")
    v[:, :, kv_len:] = float("inf")
    plan = kernel_for(q, k, kv_len=kv_len)
    assert plan.constants["decode_short_tiles"]
    assert (plan.buffers[16].value, plan.then[0].buffers[4].value) == (96, 3)
    check_against_sdpa(q, k, v, randn(1, 4, 1, 210, seed=2, dtype=dtype), kv_len)


def test_short_tile_decode_does_not_depend_on_lane_order(monkeypatch, short_tiles):
    q, k, v = qkv(1, 4, 1, 2, 150, 128, dtype=torch.float16)
    mask = randn(2, 150, seed=4, dtype=torch.float16)
    assert kernel_for(q, k, mask, 145).constants["decode_short_tiles"]
    fixed = check(q, k, v, mask, True, None, 145)
    monkeypatch.setenv("MPSKERNELS_EMULATOR_ORDER", "shuffled")
    torch.testing.assert_close(emulated(q, k, v, mask, True, None, 145), fixed, rtol=0, atol=0)


def test_b1_hq32_hk8_n512_runs_512_threadgroups_of_short_tiles():
    """The shape the short tiles are for, as planned (no constant changed): 16 blocks of 32 keys x 4 rows x 8 KV
    heads, one row per threadgroup."""
    q, k, v = qkv(1, 32, 8, 1, 512, 64, dtype=torch.bfloat16, seed=9)
    plan = kernel_for(q, k)
    assert plan.constants["decode_short_tiles"] and plan.threads == (16 * 4 * attn.DECODE_THREADS, 8, 1)
    check_against_sdpa(q, k, v, None, None)


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


@pytest.mark.parametrize("q_len, mask_shape", [(1, (2, 1, 1, 210)), (3, (1, 4, 3, 210)), (20, (20, 70))], ids=str)
def test_boolean_masks(small_blocks, q_len, mask_shape):
    """True attends, like SDPA's bool attn_mask: decode over split blocks and prefill; broadcast shapes; a row
    that hides every key gives NaN."""
    q, k, v = qkv(2, 4, 1, q_len, 210 if q_len < 20 else 70, 64, seed=q_len)
    kv_len = 200 if q_len < 20 else 66
    keep = torch.rand(*mask_shape, generator=torch.Generator().manual_seed(q_len)) > 0.3
    keep[..., :2] = True  # every row sees a key...
    keep[(0,) * (len(mask_shape) - 1)] = False  # ...but the first row, broadcast or not
    if q_len < 20:
        assert len(kernel_for(q, k, keep, kv_len).dispatches) == 2 and kernel_for(q, k, keep, kv_len).buffers[20]
    got, want = emulated(q, k, v, keep, False, None, kv_len), expected(q, k, v, keep, False, None, kv_len)
    assert got.isnan().sum() == want.isnan().sum() > 0
    assert compare(got, want, q.dtype).ok
    check(q, k, v, keep[..., :kv_len] | True, True, None, kv_len)  # an all-true mask of width kv_len, causal


def test_mask_of_another_dtype_is_a_usage_error():
    q, k, v = qkv(1, 2, 1, 1, 8, 64, dtype=torch.float16)
    with pytest.raises(ValueError, match=r"mpskernels\.attention: mask has dtype torch.float32: it must be bool"):
        torch.ops.mpskernels.attention(q, k, v, torch.zeros(1, 8), False)


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


def test_split_decode_does_not_depend_on_lane_order(monkeypatch, small_blocks):
    q, k, v = qkv(1, 4, 1, 2, 70, 128, dtype=torch.float16)
    mask = randn(2, 70, seed=4, dtype=torch.float16)
    assert len(kernel_for(q, k, mask, 66).dispatches) == 2
    fixed = check(q, k, v, mask, True, None, 66)
    monkeypatch.setenv("MPSKERNELS_EMULATOR_ORDER", "shuffled")
    torch.testing.assert_close(emulated(q, k, v, mask, True, None, 66), fixed, rtol=0, atol=0)


# ---- issue 16, item 2: arithmetic order ----

from fuzz import oracles  # noqa: E402  (tests/ is on sys.path: float64 oracles written from the formulas)


def overflow_cases(q_len, kv, dtype):
    """(q, k, v, scale, what) whose float64 result is finite but an fp32 kernel could overflow on the way."""
    big = 3.0e38 if dtype != torch.float16 else 6.0e4
    q0, k0, v0 = qkv(1, 2, 1, q_len, kv, 64, dtype=dtype, seed=kv)
    cases = []
    if dtype == torch.float32:
        # q * scale overflows (q near FLT_MAX, scale 4) though every score is 0 (k is 0 where q is huge).
        q = q0 / 32  # scores of order 1 after the scale of 4: the comparison tests overflow, not conditioning
        q[..., 0] = 2e38
        k = k0.clone()
        k[..., 0] = 0.0
        cases.append((q, k, v0, 4.0, "q * scale"))
    if dtype != torch.float16:  # half's q . k is at most 64 * 65504^2 here: no fp32 overflow to provoke
        # q . k overflows fp32 (6.4e41) though the scaled score (6.4e11) does not.
        cases.append((torch.full_like(q0, 1e20), torch.full_like(k0, 1e20), v0, 1e-30, "q . k"))
    # Equal scores, v near the dtype's max: sum p v is kv times max in fp32 unless normalised.
    v = torch.full_like(v0, big)
    v[..., 1::2] = -big
    cases.append((torch.zeros_like(q0), k0, v, None, "sum p v"))
    return cases


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("q_len, kv", [(1, 40), (3, 1000), (20, 70)], ids=["decode", "decode-split", "prefill"])
def test_attention_results_the_formula_gets_finite_are_finite(q_len, kv, dtype):
    for q, k, v, scale, what in overflow_cases(q_len, kv, dtype):
        want = oracles.attention(q, k, v, None, False, scale)
        assert want.isfinite().all(), what
        for got in (emulated(q, k, v, scale=scale), attn.reference(q, k, v, None, False, scale)):
            assert got.isfinite().all(), what
            result = compare(got, want, dtype)
            assert result.ok, f"{what}: {result}"


@pytest.mark.parametrize("q_len", [3, 20], ids=["decode", "prefill"])
def test_inputs_at_a_misaligned_offset_are_copied_before_the_vector_loads(q_len):
    """Found by tests/fuzz: contiguous q, k, v views at a storage offset of 5 floats (not 16-byte aligned) reached
    the kernels' 16-byte vector loads and crashed the emulator (a misaligned vector load, undefined on Metal)."""
    q, k, v = qkv(1, 4, 2, q_len, 24, 64, seed=6)

    def misaligned(t):
        storage = torch.full((t.numel() + 5,), float("nan"))
        view = storage[5:].view(t.shape)
        view.copy_(t)
        assert view.is_contiguous() and view.data_ptr() % 16
        return view

    got = emulated(misaligned(q), misaligned(k), misaligned(v), causal=True, scale=0.05)
    result = compare(got, expected(q, k, v, causal=True, scale=0.05), torch.float32)
    assert result.ok, str(result)
