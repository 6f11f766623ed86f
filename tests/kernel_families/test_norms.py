"""rms_norm, layer_norm, group_norm and the residual-fused add_rms_norm / add_layer_norm beyond the generated tests:
the residual's rounding, register-capacity edges at any threadgroup size (partial SIMD groups included), shuffled
lane order, numerical stability far from zero, both Metal backends for the two-output ops, usage errors and empty
inputs. Every kernel run is on the emulator, compared with a float64 reference."""

import math
import types

import pytest
import torch
import torch.nn.functional as F

from mpskernels import launches, registry
from mpskernels.emulator import compile_file, compile_source
from mpskernels._paths import metal_dir
from mpskernels.kernels import group_norm as gn
from mpskernels.kernels import layer_norm as ln
from mpskernels.kernels import rms_norm as rn
from mpskernels.kernels.spec import TensorMeta
from mpskernels.runtime import use_backend
from mpskernels.tolerances import compare

DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@pytest.fixture(autouse=True)
def poisoned_outputs(monkeypatch):
    monkeypatch.setattr(registry, "poison_outputs", True)


def emulated(name, *args):
    with use_backend("emulator"):
        return getattr(torch.ops.mpskernels, name)(*args)


def float64(args):
    return tuple(a.double() if isinstance(a, torch.Tensor) else a for a in args)


# ---- the references are what they claim to be ----


def test_references_match_torch_functional():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 40, generator=gen, dtype=torch.float64) * 2 + 1
    w, b = torch.rand(40, generator=gen, dtype=torch.float64) + 0.5, torch.randn(40, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(rn.reference(x, w, 1e-5), F.rms_norm(x, (40,), w, 1e-5))
    torch.testing.assert_close(ln.reference(x, w, b, 1e-5), F.layer_norm(x, (40,), w, b, 1e-5))
    torch.testing.assert_close(ln.reference(x, None, b, 1e-5), F.layer_norm(x, (40,), None, b, 1e-5))
    xg = torch.randn(2, 6, 3, 4, 5, generator=gen, dtype=torch.float64)
    wg, bg = torch.rand(6, generator=gen, dtype=torch.float64), torch.randn(6, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(gn.reference(xg, 3, wg, bg, 1e-5), F.group_norm(xg, 3, wg, bg, 1e-5))
    torch.testing.assert_close(gn.reference(xg[:, :, 0, 0, 0], 2, None, bg, 1e-5),
                               F.group_norm(xg[:, :, 0, 0, 0], 2, None, bg, 1e-5))


# ---- the fused residual add ----

FUSED = [("add_rms_norm", "rms_norm", (None,)), ("add_layer_norm", "layer_norm", (None, None))]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("fused, unfused, no_affine", FUSED, ids=[f[0] for f in FUSED])
@pytest.mark.parametrize("cols", [33, 4103, 16411], ids=lambda c: f"cols{c}")
def test_fused_residual_is_rounded_before_normalising(fused, unfused, no_affine, dtype, cols):
    """Random data (the sums are inexact in the dtype): residual_out is exactly `x + residual` in the dtype, and
    out is bit for bit what the unfused kernel gives for that rounded residual (so it normalises the rounded value,
    as the unfused PyTorch code `h = x + residual; y = norm(h)` does)."""
    gen = torch.Generator().manual_seed(cols)
    x = (torch.randn(2, cols, generator=gen) * 3).to(dtype)
    residual = (torch.randn(2, cols, generator=gen) * 5 + 1).to(dtype)
    out, residual_out = emulated(fused, x, residual, *no_affine, 1e-5)
    h = x + residual
    assert torch.equal(residual_out, h)
    assert torch.equal(out, emulated(unfused, h, *no_affine, 1e-5))
    # ... and against float64 arithmetic on the rounded residual.
    result = compare(out, getattr(ln if "layer" in fused else rn, "reference")(h.double(), *no_affine, 1e-5), dtype)
    assert result.ok, str(result)
    if dtype != torch.float32:  # normalising the unrounded sum would be a different (wrong) result
        assert not torch.equal(h.double(), x.double() + residual.double())


def test_fused_ops_validate_the_residual_shape():
    x = torch.randn(2, 8)
    with pytest.raises(ValueError, match=r"mpskernels\.add_rms_norm: residual must have x's shape \(2, 8\)"):
        torch.ops.mpskernels.add_rms_norm(x, torch.randn(8), None, 1e-5)
    with pytest.raises(ValueError, match=r"mpskernels\.add_layer_norm: residual must have x's shape"):
        torch.ops.mpskernels.add_layer_norm(x, torch.randn(1, 8), None, None, 1e-5)


# ---- any threadgroup size, any row length: register capacity edges, partial SIMD groups, lane order ----

GROUPS = (1, 32, 33, 40, 96)
COLS = (1, 31, 127, 129, 511, 512, 513, 700, 2100)


def row_reference(kernel, x, residual, weight, bias, eps):
    if kernel == "rms_norm":
        return (rn.reference(x, weight, eps),)
    if kernel == "layer_norm":
        return (ln.reference(x, weight, bias, eps),)
    if kernel == "add_rms_norm":
        return rn.add_reference(x, residual, weight, eps)
    return ln.add_reference(x, residual, weight, bias, eps)


@pytest.mark.parametrize("kernel", ["rms_norm", "add_rms_norm", "layer_norm", "add_layer_norm"])
def test_row_kernels_are_correct_at_any_threadgroup_size(kernel):
    """Threadgroups smaller than the plan would pick push rows past the register capacity (group * 16 elements),
    and sizes that are not multiples of 32 leave the last SIMD group partial. Half of the runs shuffle the lanes."""
    source = "rms_norm.metal" if "rms" in kernel else "layer_norm.metal"
    lib = compile_file(metal_dir() / source)
    residual_op, layer = kernel.startswith("add_"), "layer" in kernel
    gen = torch.Generator().manual_seed(5)
    runs = 0
    for group in GROUPS:
        for cols in COLS:
            x = torch.randn(2, cols, generator=gen) + 0.5
            residual = torch.randn(2, cols, generator=gen) if residual_op else None
            w = torch.rand(cols, generator=gen) + 0.5
            b = torch.randn(cols, generator=gen) if layer else None
            outs = [torch.full_like(x, float("nan")) for _ in range(2 if residual_op else 1)]
            args = [x] + ([residual] if residual_op else []) + [w] + ([b] if layer else []) + outs + [1e-5, cols]
            constants = {"has_weight": True, **({"has_bias": True} if layer else {})}
            lib.dispatch(f"{kernel}_float32", *args, threads=(2 * group,), group_size=(group,), constants=constants,
                         order="shuffled" if runs % 2 else "fixed", seed=runs)
            runs += 1
            for got, want in zip(outs, row_reference(kernel, *float64((x, residual, w, b)), 1e-5)):
                result = compare(got, want, torch.float32)
                assert result.ok, f"{kernel} group {group} cols {cols}: {result}"


@pytest.mark.parametrize("kernel", ["rms_norm", "add_rms_norm", "layer_norm", "add_layer_norm"])
def test_short_rows_share_simd_groups(kernel):
    """W x R threadgroups of short rows: W = 1..32 lanes per row (butterfly reductions over the row's lanes), R
    rows per threadgroup, lanes in fixed and shuffled order; 16 rows, two threadgroups."""
    source = "rms_norm.metal" if "rms" in kernel else "layer_norm.metal"
    lib = compile_file(metal_dir() / source)
    residual_op, layer = kernel.startswith("add_"), "layer" in kernel
    gen = torch.Generator().manual_seed(15)
    for runs, cols in enumerate((1, 5, 17, 40, 100, 250, 512)):
        w_lanes = rn.row_lanes(cols)
        x = torch.randn(16, cols, generator=gen) + 0.5
        residual = torch.randn(16, cols, generator=gen) if residual_op else None
        w = torch.rand(cols, generator=gen) + 0.5
        b = torch.randn(cols, generator=gen) if layer else None
        outs = [torch.full_like(x, float("nan")) for _ in range(2 if residual_op else 1)]
        args = [x] + ([residual] if residual_op else []) + [w] + ([b] if layer else []) + outs + [1e-5, cols]
        constants = {"has_weight": True, **({"has_bias": True} if layer else {})}
        lib.dispatch(f"{kernel}_float32", *args, threads=(2 * w_lanes, 8), group_size=(w_lanes, 8),
                     constants=constants, order="shuffled" if runs % 2 else "fixed", seed=runs)
        for got, want in zip(outs, row_reference(kernel, *float64((x, residual, w, b)), 1e-5)):
            result = compare(got, want, torch.float32)
            assert result.ok, f"{kernel} W {w_lanes} cols {cols}: {result}"


def dispatch_plan(source, plan, tensors, bounds_check):
    """Runs a family's launch plan on the emulator with the buffers it names."""
    lib = compile_file(metal_dir() / source)
    args = [tensors[b] if isinstance(b, str) else (None if b is None else b.value) for b in plan.buffers]
    lib.dispatch(plan.kernel, *args, threads=plan.threads, group_size=plan.group_size, constants=plan.constants,
                 bounds_check=bounds_check)


def vector_width_cols(dtype):
    """Column counts around the 16-byte chunk: whole chunks, one element more and one fewer, half a chunk more
    (rows alternate between 16-byte aligned and not), for one-SIMD-group rows and one-threadgroup rows."""
    n = rn.chunk_elements(dtype)
    simd_row, group_row = 8 * n, 33 * rn.N_CHUNKS * n
    return sorted({c + d for c in (simd_row, group_row) for d in (-1, 0, 1, n // 2)})


@pytest.mark.parametrize("layout", ["as-shipped", "middle-rows", "many-rows"])
@pytest.mark.parametrize("kernel", ["rms_norm", "add_rms_norm", "layer_norm", "add_layer_norm"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d)[6:])
def test_row_kernels_fast_path_and_tail(kernel, dtype, layout, monkeypatch):
    """Plans as shipped, at column counts that hit the 16-byte fast path, the element-wise tail and rows that
    are not 16-byte aligned; on the emulator's guarded copies (which end at a page, so their alignment follows
    their size) and on the tensors' own memory, also bound at an element offset (never 16-byte aligned).
    These row counts are below FEW_ROWS (8 elements a thread past 512 columns); middle-rows: the layout of FEW_ROWS
    to MANY_ROWS rows (16 elements a thread); many-rows: the layout of MANY_ROWS rows and more (16-bit rows at 32
    elements a thread), both at these few rows."""
    if layout == "many-rows":
        if dtype == torch.float32:
            pytest.skip("fp32 rows keep 16 elements a thread at any row count")
        monkeypatch.setattr(rn, "MANY_ROWS", 1)
    if layout != "as-shipped":
        monkeypatch.setattr(rn, "FEW_ROWS", 1)
    family = {"rms_norm": rn.RMS_NORM, "add_rms_norm": rn.ADD_RMS_NORM,
              "layer_norm": ln.LAYER_NORM, "add_layer_norm": ln.ADD_LAYER_NORM}[kernel]
    residual_op, layer = kernel.startswith("add_"), "layer" in kernel
    gen = torch.Generator().manual_seed(11)
    extra = [520] if layout == "many-rows" else []  # one SIMD group per row on the one-threadgroup path
    for cols in vector_width_cols(dtype) + extra:
        for rows, bounds_check, offset in ((48, True, 0), (3, False, 0), (2, False, 1)):  # 48: W x R
            def make(shape):
                flat = (torch.randn(math.prod(shape) + offset, generator=gen) + 0.25).to(dtype)
                return flat[offset:].view(shape)
            x = make((rows, cols))
            residual = make((rows, cols)) if residual_op else None
            w = (torch.rand(cols, generator=gen) + 0.5).to(dtype)
            b = torch.randn(cols, generator=gen).to(dtype) if layer else None
            outs = {"out": torch.full((rows, cols), float("nan"), dtype=dtype)}
            if residual_op:
                outs["residual_out"] = torch.full((rows, cols), float("nan"), dtype=dtype)
            metas = {"x": TensorMeta.of(x), "weight": TensorMeta.of(w)}
            if residual_op:
                metas["residual"] = TensorMeta.of(residual)
            if layer:
                metas["bias"] = TensorMeta.of(b)
            plan = family.plan(**metas, eps=1e-5)
            tensors = {"x": x, "residual": residual, "weight": w, "bias": b, **outs}
            dispatch_plan(family.source, plan, tensors, bounds_check)
            if residual_op:  # the op rounds x + residual to its dtype before normalising, as unfused code does
                h = x + residual
                wants = row_reference(kernel.removeprefix("add_"), *float64((h, None, w, b)), 1e-5) + (h,)
            else:
                wants = row_reference(kernel, *float64((x, residual, w, b)), 1e-5)
            for (name, got), want in zip(outs.items(), wants):
                result = compare(got, want, dtype)
                assert result.ok, f"{kernel} {dtype} {rows}x{cols} offset {offset} {name}: {result}"


@pytest.mark.parametrize("shape, groups", [((2, 6, 5, 7), 3), ((1, 4, 33, 7), 2), ((2, 8, 130), 4), ((3, 16), 4)])
def test_group_norm_is_correct_at_any_threadgroup_size(shape, groups):
    lib = compile_file(metal_dir() / "group_norm.metal")
    gen = torch.Generator().manual_seed(6)
    n, c = shape[:2]
    spatial = math.prod(shape[2:])
    runs = 0
    for group in GROUPS:
        x = torch.randn(*shape, generator=gen) * 2 - 1
        w, b = torch.rand(c, generator=gen) + 0.5, torch.randn(c, generator=gen)
        out = torch.full_like(x, float("nan"))
        lib.dispatch("group_norm_float32", x, w, b, out, 1e-5, c // groups * spatial, spatial, groups,
                     threads=(n * groups * group,), group_size=(group,), constants={"has_weight": True,
                                                                                     "has_bias": True},
                     order="shuffled" if runs % 2 else "fixed", seed=runs)
        runs += 1
        result = compare(out, gn.reference(*float64((x, groups, w, b)), 1e-5), torch.float32)
        assert result.ok, f"group_norm {shape} groups {groups} threads {group}: {result}"


@pytest.mark.parametrize("bounds", ["guarded", "own-memory"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d)[6:])
def test_group_norm_fast_path_and_tail(dtype, bounds, monkeypatch):
    """Channel planes of whole 16-byte chunks (one channel per chunk) and not (chunks straddling channels, groups
    ending in a partial chunk); on the emulator's guarded copies and on the tensors' own memory, also bound at an
    element offset."""
    monkeypatch.setenv("MPSKERNELS_EMULATOR_BOUNDS", "1" if bounds == "guarded" else "0")
    n = rn.chunk_elements(dtype)
    gen = torch.Generator().manual_seed(12)
    for shape, groups in (((2, 4, 2 * n), 2), ((2, 4, 2 * n + 1), 2), ((1, 6, 3, n - 1), 3), ((2, 8, 4 * n), 4)):
        for offset in (0, 1):
            flat = (torch.randn(math.prod(shape) + offset, generator=gen) * 2 - 1).to(dtype)
            x = flat[offset:].view(shape)
            w = (torch.rand(shape[1], generator=gen) + 0.5).to(dtype)
            b = torch.randn(shape[1], generator=gen).to(dtype)
            before = launches.count()
            got = emulated("group_norm", x, groups, w, b, 1e-5)
            assert launches.count() == before + 1
            result = compare(got, gn.reference(*float64((x, groups, w, b)), 1e-5), dtype)
            assert result.ok, f"group_norm {dtype} {shape} offset {offset}: {result}"


def split_group_norm(lib, x, groups, w, b, eps, slice_chunks, threads, order="fixed"):
    """group_norm through the split path's two kernels, with blocks of slice_chunks chunks and `threads` threads
    (the plan's are 1024 chunks and 256 threads: small ones reach the same code paths at small shapes)."""
    dtype = DTYPE_NAMES_[x.dtype]
    n, c = x.shape[:2]
    spatial = math.prod(x.shape[2:])
    group_elems = c // groups * spatial
    slice_ = slice_chunks * rn.chunk_elements(x.dtype)
    blocks = -(-group_elems // slice_)
    partials = torch.full((n * groups * blocks, 4), float("nan"))
    out = torch.full_like(x, float("nan"))
    grid = (n * groups * blocks * threads,)
    constants = {"has_weight": w is not None, "has_bias": b is not None}
    lib.dispatch(f"group_norm_partials_{dtype}", x, partials, group_elems, slice_, blocks, threads=grid,
                 group_size=(threads,), constants=constants, order=order)
    lib.dispatch(f"group_norm_apply_{dtype}", x, w, b, out, partials, eps, group_elems, spatial, groups, slice_,
                 blocks, threads=grid, group_size=(threads,), constants=constants, order=order)
    return out


DTYPE_NAMES_ = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d)[6:])
def test_group_norm_split_path(dtype):
    """Groups over several blocks: blocks of whole chunks with a partial last block (group sizes a multiple of the
    chunk, one more and one fewer), blocks held in registers or looping past them (slice > threads * 4 chunks),
    shuffled lane order, a span bound at an element offset, weight and bias changing channel inside a block."""
    lib = compile_file(metal_dir() / "group_norm.metal")
    n = rn.chunk_elements(dtype)
    gen = torch.Generator().manual_seed(21)
    runs = 0
    for shape, groups in (((2, 4, 24 * n), 2), ((1, 6, 24 * n + 1), 3), ((2, 2, 3, 8 * n - 1), 1)):
        for slice_chunks, threads, offset in ((8, 32, 0), (16, 32, 1), (48, 64, 0), (12, 3, 0)):
            flat = (torch.randn(math.prod(shape) + offset, generator=gen) * 2 + 1).to(dtype)
            x = flat[offset:].view(shape)
            w = (torch.rand(shape[1], generator=gen) + 0.5).to(dtype)
            b = torch.randn(shape[1], generator=gen).to(dtype)
            got = split_group_norm(lib, x, groups, w, b, 1e-5, slice_chunks, threads,
                                   "shuffled" if runs % 2 else "fixed")
            runs += 1
            result = compare(got, gn.reference(*float64((x, groups, w, b)), 1e-5), dtype)
            assert result.ok, f"{dtype} {shape} slice {slice_chunks} threads {threads} offset {offset}: {result}"


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d)[6:])
def test_group_norm_op_takes_the_split_plan(dtype):
    """Through the op as shipped (NaN-poisoned outputs and scratch): two groups of 8400 elements are too few to
    fill a GPU, so each is split over 16 KiB blocks (3 for fp32, 2 for 16-bit; the last one partial), with a
    per-channel affine whose channels straddle the blocks."""
    gen = torch.Generator().manual_seed(23)
    x = (torch.randn(1, 6, 2800, generator=gen) * 3 + 2).to(dtype)
    w, b = (torch.rand(6, generator=gen) + 0.5).to(dtype), torch.randn(6, generator=gen).to(dtype)
    plan = gn.plan(TensorMeta.of(x), 2, TensorMeta.of(w), TensorMeta.of(b), 1e-5)
    assert plan.then and plan.scratch[0].shape == (2 * (3 if dtype == torch.float32 else 2), 4)
    before = launches.count()
    got = emulated("group_norm", x, 2, w, b, 1e-5)
    assert launches.count() == before + 2
    result = compare(got, gn.reference(*float64((x, 2, w, b)), 1e-5), dtype)
    assert result.ok, f"{dtype}: {result}"


def test_group_norm_split_path_edge_values():
    """Per-block statistics merged across blocks: a constant group gives exactly the bias (NaN at eps = 0); inf in
    one block makes its whole group NaN and no other; bf16 values near the float max and tiny values at eps = 0
    stay finite and accurate although each block scales its sums by its own power of two."""
    lib = compile_file(metal_dir() / "group_norm.metal")
    gen = torch.Generator().manual_seed(22)
    b = torch.randn(4, generator=gen)
    const = torch.full((1, 4, 100), 27.07)
    got = split_group_norm(lib, const, 2, None, b, 1e-12, 8, 32)
    assert torch.equal(got, b.view(1, 4, 1).expand(1, 4, 100))
    assert split_group_norm(lib, const, 2, None, b, 0.0, 8, 32).isnan().all()
    x = torch.randn(1, 4, 100, generator=gen)
    x[0, 1, 70] = float("inf")  # group 0, its third block
    got = split_group_norm(lib, x, 2, None, None, 1e-5, 8, 32)
    assert got[0, :2].isnan().all() and got[0, 2:].isfinite().all()
    # one block of small values beside blocks of large ones: the merged scale differs from the block's
    mixed = torch.randn(1, 2, 256, generator=gen)
    mixed[0, 0, :32] *= 1e-6
    huge = ((torch.rand(1, 2, 256, generator=gen) * 2 - 1) * 3.3e38).to(torch.bfloat16)
    tiny = torch.randn(1, 2, 256, generator=gen) * 1e-30
    for x, dtype, eps in ((mixed, torch.float32, 1e-5), (huge, torch.bfloat16, 1e-5), (tiny, torch.float32, 0.0),
                          (tiny, torch.float32, 1e-5)):
        got = split_group_norm(lib, x, 1, None, None, eps, 16, 32)
        assert got.isfinite().all()
        result = compare(got, oracles.group_norm(x, 1, None, None, eps), dtype)
        assert result.ok, f"{dtype} eps {eps}: {result}"


def test_plans_use_whole_simd_groups_and_hold_rows_of_64_kib_in_registers():
    for dtype, capacity in ((torch.float32, 16384), (torch.float16, 32768), (torch.bfloat16, 32768)):
        for cols in (1, 31, 33, 100, 4096, 4097, capacity, capacity + 1, 100000):
            p = rn.threads_per_row(cols, dtype, rn.FEW_ROWS)
            assert p % 32 == 0 and 32 <= p <= 1024
            held = p * rn.N_CHUNKS * rn.chunk_elements(dtype)
            assert (held >= cols) == (cols <= capacity)
            for rows in (6, 4096, 7):
                threads, group = rn.row_launch(cols, rows, dtype)
                assert all(t % g == 0 for t, g in zip(threads, group))  # whole threadgroups only
                assert threads[0] // group[0] * group[1] == rows  # one row per W lanes or per threadgroup
                if p > 32:
                    assert group == (rn.threads_per_row(cols, dtype, rows), 1, 1)
                else:  # W x R: W a power of two holding the row at 16 elements a lane, whole SIMD groups
                    w, r = group[:2]
                    assert w & (w - 1) == 0 and w * rn.HELD_ELEMENTS >= cols and w * r <= 256
                    assert (w * r) % 32 == 0 or (w == 32 and r == 1)
    # 16-bit rows past a SIMD group's 512 elements hold 32 elements a thread from MANY_ROWS rows on (4 chunks,
    # as fp32 at 16), 16 from FEW_ROWS to MANY_ROWS; fp32 16 from FEW_ROWS on; short rows the same at any row count
    for dtype in (torch.float16, torch.bfloat16):
        assert rn.threads_per_row(4096, dtype, rn.MANY_ROWS) == 128 and rn.threads_per_row(4096, dtype, 64) == 256
        assert rn.threads_per_row(520, dtype, rn.MANY_ROWS) == 32 and rn.threads_per_row(520, dtype, 64) == 64
        assert rn.threads_per_row(100000, dtype, rn.MANY_ROWS) == 1024
        assert rn.row_launch(512, 4096, dtype) == rn.row_launch(512, 8 * 512, dtype)  # short rows: W x R
    assert rn.threads_per_row(4096, torch.float32, 4096) == 256
    assert rn.threads_per_row(4096, torch.float32, rn.FEW_ROWS) == 256
    # below FEW_ROWS rows (decode) a row past 512 elements holds 8 elements a thread in every dtype, twice the threads
    for dtype in DTYPES:
        assert rn.threads_per_row(4096, dtype, 8) == 512 and rn.threads_per_row(4096, dtype, rn.FEW_ROWS - 1) == 512
        assert rn.threads_per_row(520, dtype, 1) == 96 and rn.threads_per_row(512, dtype, 1) == 32
        assert rn.threads_per_row(100000, dtype, 1) == 1024
    assert rn.row_launch(128, 4096, torch.float16) == ((8 * 4096 // 32, 32, 1), (8, 32, 1))  # QK-norm rows
    assert rn.row_launch(128, 6, torch.float16) == ((32 * 3, 2, 1), (32, 2, 1))  # 8 x 2 < a SIMD group
    p = gn.plan(TensorMeta((64, 320, 16, 16), torch.float16), 32, None, None, 1e-5)  # 2048 groups of 2560
    assert not p.then and p.threads[0] == 64 * 32 * 160 and p.group_size[0] == 160  # 16 elements a thread


def test_group_norm_splits_groups_over_blocks_where_few_groups_would_idle_the_gpu():
    """Image-model group norms with few groups (32 groups x 1..4 samples of 160k elements) are split over blocks
    of 16 KiB; groups that fill the GPU (8 x 32 groups of 64k elements: 256 x 512 threads) keep the one-block
    kernel, which reads past its registers a second time from cache rather than splitting."""
    for shape, dtype, blocks in (((8, 512, 64, 64), torch.bfloat16, 1), ((8, 512, 64, 64), torch.float32, 1),
                                 ((1, 320, 128, 128), torch.float16, 20), ((1, 320, 128, 128), torch.float32, 40),
                                 ((1, 64, 8, 9), torch.float32, 1)):
        p = gn.plan(TensorMeta(shape, dtype), 32, TensorMeta((shape[1],), dtype), None, 1e-5)
        n_groups = shape[0] * 32
        if blocks == 1:
            assert not p.then and not p.scratch
            assert p.group_size[0] <= gn.ONE_BLOCK_THREADS and p.threads[0] == n_groups * p.group_size[0]
            continue
        assert p.kernel.startswith("group_norm_partials_") and p.then[0].kernel.startswith("group_norm_apply_")
        assert p.threads == p.then[0].threads == (n_groups * blocks * gn.BLOCK_THREADS, 1, 1)
        assert p.scratch[0].shape == (n_groups * blocks, 4)
        assert blocks * gn.slice_elements(dtype) >= math.prod(shape[1:]) // 32 > (blocks - 1) * gn.slice_elements(dtype)


def test_launches_past_32_bit_grids_fall_back():
    many_short_rows = {"x": torch.empty(2**27, 1, device="meta")}  # 2^27 rows x 32 threads = 2^32 threads
    assert "32-bit" in rn.grid_fits_uint32(many_short_rows)
    assert rn.grid_fits_uint32({"x": torch.empty(2**27 - 1, 1, device="meta")}) is None
    assert rn.ADD_RMS_NORM.constraints[-1] is ln.LAYER_NORM.constraints[-1] is rn.grid_fits_uint32
    assert "32-bit" in gn.grid_fits_uint32({"x": torch.empty(2**22, 32, device="meta"), "groups": 32})
    assert gn.grid_fits_uint32({"x": torch.empty(2**22, 32, device="meta"), "groups": 16}) is None


# ---- numerics ----


@pytest.mark.parametrize("cols", [3000, 20000], ids=["registers", "past-registers"])
def test_layer_norm_is_stable_far_from_zero(cols):
    """Mean 1e4, std 1 in fp32: E[x^2] - E[x]^2 would lose every digit of the variance (ulp(1e8) = 8)."""
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(2, cols, generator=gen) + 1e4
    out = emulated("layer_norm", x, None, None, 1e-5)
    want = ln.reference(x.double(), None, None, 1e-5)
    # The only error left is the fp32 rounding of the mean (a few ulp of 1e4), shifting every output alike.
    assert (out.double() - want).abs().max() < 5e-3
    std = out.double().std(-1, unbiased=False)
    torch.testing.assert_close(std, torch.ones_like(std), rtol=0, atol=1e-4)


def test_group_norm_is_stable_far_from_zero():
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(2, 4, 100, 100, generator=gen) - 3e3  # 20000 elements per group: past the register capacity
    out = emulated("group_norm", x, 2, None, None, 1e-5)
    want = gn.reference(x.double(), 2, None, None, 1e-5)
    assert (out.double() - want).abs().max() < 5e-3
    std = out.double().reshape(2, 2, -1).std(-1, unbiased=False)
    torch.testing.assert_close(std, torch.ones_like(std), rtol=0, atol=1e-4)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d)[6:])
def test_constant_rows_normalise_to_the_bias(dtype):
    x = torch.full((3, 45), 2.5, dtype=dtype)
    b = torch.randn(45).to(dtype)
    torch.testing.assert_close(emulated("layer_norm", x, None, b, 1e-5), b.expand(3, 45), rtol=0, atol=0)
    xg = torch.full((2, 4, 3, 3), -7.0, dtype=dtype)
    bg = torch.randn(4).to(dtype)
    torch.testing.assert_close(emulated("group_norm", xg, 2, None, bg, 1e-5), bg.view(1, 4, 1, 1).expand(2, 4, 3, 3),
                               rtol=0, atol=0)


# ---- usage errors, empty inputs ----


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: torch.ops.mpskernels.group_norm(torch.randn(2, 6, 4), 4, None, None, 1e-5),
         r"mpskernels\.group_norm: groups must be a positive divisor of the 6 channels, got 4"),
        (lambda: torch.ops.mpskernels.group_norm(torch.randn(2, 6, 4), 0, None, None, 1e-5),
         r"groups must be a positive divisor"),
        (lambda: torch.ops.mpskernels.group_norm(torch.randn(6), 3, None, None, 1e-5),
         r"mpskernels\.group_norm: x must have shape \(N, C, \*\), got \(6,\)"),
        (lambda: torch.ops.mpskernels.group_norm(torch.randn(2, 6, 4), 3, torch.rand(4), None, 1e-5),
         r"weight must have shape \(6,\) to match x's channels, got \(4,\)"),
        (lambda: torch.ops.mpskernels.layer_norm(torch.randn(2, 6), None, torch.rand(5), 1e-5),
         r"mpskernels\.layer_norm: bias must have shape \(6,\)"),
    ],
    ids=["groups-divide", "groups-positive", "group-norm-dims", "group-norm-weight", "layer-norm-bias"],
)
def test_usage_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_empty_inputs():
    e = torch.empty(0, 8)
    assert emulated("layer_norm", e, None, None, 1e-5).shape == (0, 8)
    out, res = emulated("add_rms_norm", e, e, None, 1e-5)
    assert out.shape == res.shape == (0, 8)
    out, res = emulated("add_layer_norm", e, e, torch.rand(8), None, 1e-5)
    assert out.shape == res.shape == (0, 8)
    assert emulated("group_norm", torch.empty(0, 4, 3), 2, None, None, 1e-5).shape == (0, 4, 3)
    assert emulated("group_norm", torch.empty(2, 4, 0, 5), 2, None, None, 1e-5).shape == (2, 4, 0, 5)
    # On CPU without the emulator the reference runs, and handles empty batches too.
    assert torch.ops.mpskernels.group_norm(torch.empty(0, 4, 3), 2, None, None, 1e-5).shape == (0, 4, 3)


# ---- both Metal backends, for the two-output ops (the generic binding test compares single outputs) ----


@pytest.fixture
def fake_metal(monkeypatch):
    """Both Metal backends on CPU tensors, the GPU replaced by the emulator (as in tests/test_metal_backends.py)."""
    from mpskernels.runtime import jit, metal
    from mpskernels.runtime.jit import JitBackend
    from mpskernels.runtime.metal import MetalBackend

    class FakeShaderLibrary:
        def __init__(self, source):
            self.emulated = compile_source(source, name="compile_shader.metal")

        def __getattr__(self, name):
            return getattr(self.emulated, name)

    libraries = {}

    def launch(source, source_hash, dispatches):  # the bridge's call: every dispatch of one op call, in order
        lib = libraries.setdefault(source_hash, compile_source(source, name="bridge.metal"))
        for kernel, args, threads, group_size, threadgroup_memory in dispatches:
            lib.dispatch(kernel, *args, threads=tuple(threads), group_size=tuple(group_size),
                         threadgroup_memory=dict(threadgroup_memory))

    monkeypatch.setattr(torch.mps, "compile_shader", FakeShaderLibrary, raising=False)
    monkeypatch.setattr(metal, "_bridge", lambda: types.SimpleNamespace(launch=launch))
    for cls in (JitBackend, MetalBackend):
        monkeypatch.setattr(cls, "device_types", ("cpu",))
        monkeypatch.setattr(cls, "unavailable", lambda self: None)
    jit._library.cache_clear()


@pytest.mark.parametrize("backend", ["metal-jit", "metal"])
@pytest.mark.parametrize("family", [rn.ADD_RMS_NORM, ln.ADD_LAYER_NORM], ids=lambda f: f.name)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d)[6:])
def test_metal_backends_bind_the_fused_ops(fake_metal, backend, family, dtype):
    for args in family.examples(dtype)[:3]:
        with use_backend(backend):
            outs = registry.op(family.name)(*args)
        for got, want in zip(outs, family.reference(*float64(args))):
            result = compare(got, want, dtype)
            assert result.ok, str(result)


def test_the_demo_still_runs_the_rms_norm_kernel(capsys):
    from mpskernels.demo import run_demo

    assert run_demo() == 0


# ---- issue 16: constant rows, huge values ----

from fuzz import oracles  # noqa: E402  (tests/ is on sys.path: float64 oracles written from the formulas)

CONSTANT_CASES = [
    ("layer_norm", lambda x, w, b, eps: (x, w, b, eps), lambda x: x.shape[-1]),
    ("add_layer_norm", lambda x, w, b, eps: (x, torch.zeros_like(x), w, b, eps), lambda x: x.shape[-1]),
    ("group_norm", lambda x, w, b, eps: (x.reshape(x.shape[0], 2, -1), 1, w[:2], b[:2], eps), None),
]


def constant_rows(dtype, cols):
    values = torch.tensor([27.07, -3.3, 1e4 + 0.1, 7e-3])  # one constant row each
    return values[:, None].expand(4, cols).to(dtype).contiguous()


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("cols", [768, 20008], ids=["registers", "past-registers"])
@pytest.mark.parametrize("name, make, _", CONSTANT_CASES, ids=[c[0] for c in CONSTANT_CASES])
def test_constant_rows_give_exactly_the_bias_and_nan_at_eps_0(name, make, _, dtype, cols):
    """Issue 16, item 1: BERT's eps = 1e-12 on constant (padding) rows. The mean as sum / n is a few ulps off, so
    the old kernels and reference gave about +-1 * w + b. Exactly b is what the exactly-rounded float64 formula
    gives (PyTorch's float64 F.layer_norm / F.group_norm agree to 1e-6; its fp32 CPU group_norm has the same
    defect on 768-element groups); at eps = 0, NaN."""
    gen = torch.Generator().manual_seed(cols)
    x = constant_rows(dtype, cols)
    w, b = (torch.rand(cols, generator=gen) + 0.5).to(dtype), torch.randn(cols, generator=gen).to(dtype)
    args = make(x, w, b, 1e-12)
    fn = getattr(oracles, name)
    family = getattr(ln if "layer" in name else gn, "ADD_LAYER_NORM" if name.startswith("add") else
                     "LAYER_NORM" if "layer" in name else "GROUP_NORM")
    want = fn(*args)
    want = want[0] if isinstance(want, tuple) else want
    if name == "group_norm":
        torch_says = F.group_norm(args[0].double(), 1, args[2].double(), args[3].double(), 1e-12)
    else:
        torch_says = F.layer_norm(x.double(), (cols,), w.double(), b.double(), 1e-12)
    bias = args[2] if name == "layer_norm" else args[3]
    expected_bias = torch.broadcast_to(bias.float().reshape((1, 2, 1) if name == "group_norm" else (1, cols)),
                                       want.shape)
    assert torch.equal(want, expected_bias.double())  # the oracle: exactly b
    torch.testing.assert_close(torch_says, expected_bias.double(), rtol=0, atol=1e-6)  # PyTorch: b
    for result in (emulated(name, *args), family.reference(*args)):
        out = result[0] if isinstance(result, tuple) else result
        assert torch.equal(out, expected_bias.to(dtype)), f"{name}: {(out.float() - expected_bias).abs().max()}"
    zero_eps = make(x, w, b, 0.0)
    for result in (emulated(name, *zero_eps), family.reference(*zero_eps)):
        out = result[0] if isinstance(result, tuple) else result
        assert out.isnan().all()


def test_issue_16_constant_row_reproducer():
    x = torch.full((2, 768), 27.07)
    assert torch.equal(emulated("layer_norm", x, None, None, 1e-12), torch.zeros(2, 768))
    assert torch.equal(ln.reference(x, None, None, 1e-12), torch.zeros(2, 768))


@pytest.mark.parametrize("cols", [300, 20000], ids=["registers", "past-registers"])
@pytest.mark.parametrize("name", ["layer_norm", "group_norm"])
def test_norms_of_values_near_the_float_max_stay_finite(name, cols):
    """Issue 16, item 2: bf16 values near +-3.4e38 overflow the fp32 sums; the formula's result (float64) is
    finite, and so must the kernel's and the reference's be. Also a fp32 row with a large mean and a spread of
    1e20 (its squares overflow fp32)."""
    gen = torch.Generator().manual_seed(cols)
    cases = [((torch.rand(2, cols, generator=gen) * 2 - 1) * 3.3e38).to(torch.bfloat16),
             (torch.rand(2, cols, generator=gen) * 3e38).to(torch.bfloat16),
             torch.randn(2, cols, generator=gen) * 1e20 + 1e25]
    for x in cases:
        if name == "layer_norm":
            args, want = (x, None, None, 1e-5), oracles.layer_norm(x, None, None, 1e-5)
        else:
            args, want = (x.reshape(2, 4, -1), 2, None, None, 1e-5), None
            want = oracles.group_norm(*args)
        family = ln.LAYER_NORM if name == "layer_norm" else gn.GROUP_NORM
        for out in (emulated(name, *args), family.reference(*args)):
            assert out.isfinite().all()
            result = compare(out, want, x.dtype)
            assert result.ok, str(result)


def test_norms_of_rows_with_inf_or_nan_are_nan():
    """A row holding inf or NaN is NaN throughout (the formula's mean is inf or NaN); other rows are unaffected."""
    x = torch.randn(4, 40)
    x[0, 3], x[1, 0], x[2, 5] = float("inf"), float("-inf"), float("nan")
    for out in (emulated("layer_norm", x, None, None, 1e-5), ln.reference(x, None, None, 1e-5)):
        assert out[:3].isnan().all() and out[3].isfinite().all()


@pytest.mark.parametrize("cols", [40, 20000], ids=["registers", "past-registers"])
def test_tiny_values_at_eps_0_are_normalised_not_infinite(cols):
    """Found by tests/fuzz: values of 1e-30 at eps = 0 have an fp32 variance of 0 (1e-60 underflows), so
    (v - mean) * rsqrt(0) was +-inf; the formula's value is finite (about +-1)."""
    gen = torch.Generator().manual_seed(cols)
    for dtype in (torch.float32, torch.bfloat16):
        x = (torch.randn(2, cols, generator=gen) * 1e-30).to(dtype)
        for name, args, want in [
            ("layer_norm", (x, None, None, 0.0), oracles.layer_norm(x, None, None, 0.0)),
            ("group_norm", (x.reshape(2, 4, -1), 2, None, None, 0.0), oracles.group_norm(x.reshape(2, 4, -1), 2,
                                                                                          None, None, 0.0)),
        ]:
            family = ln.LAYER_NORM if name == "layer_norm" else gn.GROUP_NORM
            for out in (emulated(name, *args), family.reference(*args)):
                result = compare(out, want, dtype)
                assert result.ok, f"{name} {dtype}: {result}"


# ---- weight_offset: Gemma's RMSNorm, x_hat * (1 + w) ----


def gemma_rms_norm(x, w, eps):
    """Gemma's RMSNorm as transformers writes it (modeling_gemma2.Gemma2RMSNorm.forward), in float64."""
    x64 = x.double()
    return x64 * torch.rsqrt(x64.pow(2).mean(-1, keepdim=True) + eps) * (1.0 + w.double())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("cols", [40, 2304, 9000])  # 2304: Gemma-2-2B's width; 9000: past the register capacity
def test_weight_offset_is_gemmas_one_plus_w(dtype, cols):
    gen = torch.Generator().manual_seed(cols)
    x = torch.randn(3, cols, generator=gen).to(dtype)
    residual = torch.randn(3, cols, generator=gen).to(dtype)
    w = (torch.randn(cols, generator=gen) * 0.3).to(dtype)  # Gemma's weights start at 0
    got = emulated("rms_norm", x, w, 1e-6, 1.0)
    assert compare(got, gemma_rms_norm(x, w, 1e-6).to(dtype), dtype).ok
    if dtype == torch.float32:  # PyTorch's own op with the summed weight, where the sum is exact enough
        torch.testing.assert_close(got, F.rms_norm(x, (cols,), w + 1, 1e-6), rtol=1e-5, atol=1e-5)
    normed, total = emulated("add_rms_norm", x, residual, w, 1e-6, 1.0)
    assert torch.equal(total, x + residual)
    assert compare(normed, gemma_rms_norm(x + residual, w, 1e-6).to(dtype), dtype).ok
    # the 1 is added in fp32, as Gemma adds it: no rounding of 1 + w to the dtype first
    rounded_first = emulated("rms_norm", x, (w.float() + 1).to(dtype), 1e-6)
    if dtype == torch.bfloat16:
        exact = gemma_rms_norm(x, w, 1e-6)
        assert (got.double() - exact).abs().max() < (rounded_first.double() - exact).abs().max()


def test_a_weight_offset_needs_a_weight():
    with pytest.raises(ValueError, match=r"mpskernels\.rms_norm: weight_offset 1\.0 needs a weight"):
        torch.ops.mpskernels.rms_norm(torch.randn(2, 8), None, 1e-6, 1.0)
    with pytest.raises(ValueError, match=r"mpskernels\.add_rms_norm: weight_offset 2\.0 needs a weight"):
        torch.ops.mpskernels.add_rms_norm(torch.randn(2, 8), torch.randn(2, 8), None, 1e-6, 2.0)


@pytest.mark.parametrize("cols", [32768, 4096, 512])
def test_layer_norm_16_bit_is_accurate_with_an_outlier_first_value(cols):
    """The statistics shift every value by the row's first one: a first value far out in the row makes E[d^2] much
    larger than the variance, the case where a one-pass E[d^2] - E[d]^2 loses up to log2(cols) bits (computed
    that way at 32768 columns, the outlier's output was 1.64 off and the row's std 0.9% off)."""
    gen = torch.Generator().manual_seed(9)
    x = torch.randn(2, cols, generator=gen)
    x[:, 0] = 30000.0  # about sqrt(cols) standard deviations from the row's mean
    x = x.half()
    out = emulated("layer_norm", x, None, None, 1e-5).double()
    want = ln.reference(x.double(), None, None, 1e-5)
    assert (out[:, 0] - want[:, 0]).abs().max() < 0.05  # half an fp16 ulp of 181 is 0.0625
    std = out.std(-1, unbiased=False)
    torch.testing.assert_close(std, torch.ones_like(std), rtol=0, atol=1e-3)


@pytest.mark.parametrize("z", [0.0, 3.0, 3.8, 3.95, -3.8])
@pytest.mark.parametrize("cols", [4096, 32768])
def test_layer_norm_half_rows_near_the_one_reduction_bound(z, cols):
    """Half rows held in registers take mean and variance from one reduction of the values shifted by the first
    one while E[d^2] <= 16 variance (metal/rows.h, CANCELLATION_BOUND: a first value within ~3.9 standard deviations
    of the mean); 3.95 is just past it and takes the second pass. Either side stays within fp16's tolerance of the
    float64 normalisation written from its definition, (x - mean) / sqrt(var + eps) with the biased variance."""
    gen = torch.Generator().manual_seed(int(cols + 100 * z))
    x = torch.randn(3, cols, generator=gen, dtype=torch.float64) * 2.0 + 5.0
    x[:, 0] = x[:, 1:].mean(-1) + z * x[:, 1:].std(-1)
    x = x.half()
    out = emulated("layer_norm", x, None, None, 1e-5)
    v = x.double()
    mean = v.mean(-1, keepdim=True)
    want = (v - mean) / torch.sqrt(((v - mean) ** 2).mean(-1, keepdim=True) + 1e-5)
    result = compare(out, want, torch.float16)
    assert result.ok, f"z {z}: {result}"
    assert compare(out, F.layer_norm(v, (cols,), eps=1e-5), torch.float16).ok
