"""The anchor lane (issue 12): our kernels against the anchors' Metal kernels, PyTorch's native CUDA ops and
torch.compile, side by side on one NVIDIA GPU in one run, every result checked against a float64 reference.

For every kernel family (mpskernels.kernels.FAMILIES) at model sizes (LLaMA-7B rows: hidden 4096, MLP 11008; KV
caches 512 to 32k; batch 1/4/8; head dim 64 and 128; prefill 512 to 8k) in float32, float16 and bfloat16:
  - ours: the shipped .metal kernel through the CUDA lane (mpskernels.cuda.runner, prepared launcher);
  - each anchor op for the family (mpskernels.anchors.for_family), its unmodified Metal kernel(s) through the same
    lane with the anchor's own host parameters; a chain of anchor kernels (MLX's sigmoid then multiply for silu) is
    timed as the chain;
  - PyTorch's native CUDA op in the same dtype, and torch.compile of the written-out form (the family's reference);
  - the device copy bandwidth, for % of copy.
Writes docs/anchor-lane.md and docs/anchor-lane.json (or --out FILE.md and FILE.json).

Anchor ops are called with our family's tensor arguments positionally (schema order; trailing None tensors left
out) and its other arguments as keywords by schema name, those at their schema default left out; an op that does
not cover a case raises NotImplementedError (the row says "n/a"). ADAPTERS overrides this per anchor op.

Timing: CUDA events, warm-up, median over batches. Kernels shorter than GRAPH_BELOW_US are timed as a CUDA graph of
N launches (host launch cost would otherwise dominate a few-microsecond kernel); longer ones back to back on the
stream, where the GPU queue hides the host, timed twice and the lower median kept. Each result records which.

The jobs (dtype x family, bf16 first) run in a child process: a kernel that leaves a sticky CUDA error or hangs
costs its own case, not the run. --budget stops starting families; the report is rewritten after each one.
--warm N compiles every kernel first in N processes at once (CuPy keeps each in its disk cache), so the timed run,
which is one process, does not wait on NVRTC one translation unit at a time.

    python benches/anchor_lane.py [--families rms_norm,attention] [--dtypes bfloat16] [--quick] [--out FILE.md]
    python benches/anchor_lane.py --render docs/anchor-lane.json   # the Markdown again, no GPU
    python benches/anchor_lane.py --render all.json attention.json  # two calls' runs of one commit, merged

On a machine whose torch is not 2.13 and that cannot download, the anchors' sources travel with the checkout:
MPSKERNELS_TORCH_METAL_INCLUDE=<copy of torch 2.13's include/ holding ATen/native/mps/kernels and c10/metal>,
MPSKERNELS_ANCHOR_CACHE=<copy of the anchor cache holding mlx-metal-<version>/mlx>, MPSKERNELS_TORCH_HEADERS_VERSION
(for the report) and MPSKERNELS_GIT_COMMIT (a checkout without .git).
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

import mpskernels  # noqa: F401  (registers the ops: schema defaults, checks, allocation)
from mpskernels import registry
from mpskernels.cuda import runner, timing
from mpskernels.cuda.anchor_report import (AnchorLaneReport, Result, Row, from_json, merge_reports, row_from_json,
                                           row_json, to_json, to_markdown)
from mpskernels.kernels import FAMILIES
from mpskernels.kernels.native import native_fn
from mpskernels.kernels.rope import tables
from mpskernels.tolerances import finite_rms, tolerance_for
from mpskernels.verify.check import REFERENCE_ERROR_FACTOR

ROOT = Path(__file__).resolve().parent.parent
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
DEVICE = "cuda"  # a CPU dry run of the harness sets "cpu"
GRAPH_BELOW_US = 200.0  # above this the launch queue hides the host's ~10 µs per launch
# An anchor kernel outside the verifier's bound but within this many times the dtype's tolerance (at the result's
# largest magnitude) computes in its storage dtype by design (MLX's half-precision elementwise chains, PyTorch's
# prefill rounding q * scale): it is what Mac users run, so it is timed and compared as "loose" (†). Our kernels
# get no such allowance.
PLAUSIBLE = 8.0
CHECK_ONLY = False  # a --warm child: run and check every kernel once, time nothing (set by child())


# ---- cases ----


@dataclass
class Case:
    label: str
    args: tuple
    bytes_moved: int | None = -1  # -1: every input read once and every output written once; None: not memory-bound
    quick: bool = False  # one of the few cases --quick runs


def _gen(dtype: torch.dtype):
    gen = torch.Generator(device=DEVICE).manual_seed(0)

    def randn(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen, device=DEVICE) * scale).to(dtype)

    def grid(*shape):
        """Multiples of 1/16 in [-3.75, 3.75]: x + residual is exact in every dtype, so the fused ops' rounded
        residual equals the float64 oracle's (as in the families' own examples)."""
        return (torch.randint(-60, 61, shape, generator=gen, device=DEVICE) / 16).to(dtype)

    def weight(n):
        return (torch.rand(n, generator=gen, device=DEVICE) + 0.5).to(dtype)

    return randn, grid, weight


TOKENS, HIDDEN, MLP = 4096, 4096, 11008  # LLaMA-7B: a 4096-token prefill's rows, and decode's 8 rows
DECODE_ROWS = 8


def activation_cases(name: str, dtype: torch.dtype) -> list[Case]:
    randn, _, _ = _gen(dtype)
    rows = ((TOKENS, True), (DECODE_ROWS, False))
    if name in ("silu", "mish", "hardswish"):
        return [Case(f"x {r}x{MLP}", (randn(r, MLP, scale=3),), quick=q) for r, q in rows]
    if name == "gelu":
        return [Case(f"x {r}x{MLP}", (randn(r, MLP, scale=3), "none"), quick=q) for r, q in rows] + [
            Case(f"x {TOKENS}x{MLP} tanh", (randn(TOKENS, MLP, scale=3), "tanh"))]
    if name in ("swiglu", "geglu"):
        extra = ("none",) if name == "geglu" else ()
        return [Case(f"a, b {r}x{MLP}", (randn(r, MLP, scale=3), randn(r, MLP)) + extra, quick=q) for r, q in rows]
    if name in ("swiglu_split", "geglu_split"):
        extra = ("none",) if name == "geglu_split" else ()
        return [Case(f"x {r}x{2 * MLP}", (randn(r, 2 * MLP, scale=3),) + extra, quick=q) for r, q in rows]
    if name == "bias_act":
        return [Case(f"x {TOKENS}x{MLP}, gelu", (randn(TOKENS, MLP), randn(MLP), "gelu", -1), quick=True),
                Case("x 8x320x64x64 channels, silu", (randn(8, 320, 64, 64), randn(320), "silu", 1))]
    return []


def norm_cases(name: str, dtype: torch.dtype) -> list[Case]:
    randn, grid, weight = _gen(dtype)
    rows = ((TOKENS, True), (DECODE_ROWS, False))
    if name == "rms_norm":
        return [Case(f"x {r}x{HIDDEN}", (randn(r, HIDDEN), weight(HIDDEN), 1e-5), quick=q) for r, q in rows] + [
            Case("x 512x32768", (randn(512, 32768), None, 1e-6))]
    if name == "add_rms_norm":
        return [Case(f"x, residual {r}x{HIDDEN}", (grid(r, HIDDEN), grid(r, HIDDEN), weight(HIDDEN), 1e-5), quick=q)
                for r, q in rows]
    if name == "layer_norm":
        return [Case(f"x {r}x{HIDDEN}", (randn(r, HIDDEN, scale=2), weight(HIDDEN), randn(HIDDEN), 1e-5), quick=q)
                for r, q in rows]
    if name == "add_layer_norm":
        return [Case(f"x, residual {r}x{HIDDEN}",
                     (grid(r, HIDDEN), grid(r, HIDDEN), weight(HIDDEN), randn(HIDDEN), 1e-5), quick=q)
                for r, q in rows]
    if name == "group_norm":
        return [Case("x 8x512x64x64, 32 groups", (randn(8, 512, 64, 64), 32, weight(512), randn(512), 1e-5), quick=True),
                Case("x 1x320x128x128, 32 groups", (randn(1, 320, 128, 128), 32, weight(320), randn(320), 1e-5))]
    if name in ("softmax", "log_softmax"):
        return [Case("x 32x2048x2048", (randn(32, 2048, 2048, scale=4), None, 1.0), quick=True),
                Case("x 2048x32000 (vocab)", (randn(2048, 32000, scale=4), None, 1.0)),
                Case("x 262144x128", (randn(262144, 128, scale=4), None, 1.0)),
                Case("x 8x32x512x512, mask 512x512", (randn(8, 32, 512, 512, scale=4), randn(512, 512), 0.125))]
    return []


def cache_cases(name: str, dtype: torch.dtype) -> list[Case]:
    randn, _, _ = _gen(dtype)
    e = torch.empty((), dtype=dtype).element_size()
    if name == "rope":
        cos, sin = (t.to(DEVICE) for t in tables(TOKENS, 128, False, dtype))
        q, k = randn(1, 32, TOKENS, 128), randn(1, 8, TOKENS, 128)
        qd, kd = randn(8, 32, 1, 128), randn(8, 8, 1, 128)
        decode_bytes = 2 * (qd.numel() + kd.numel()) * e + 2 * 128 * e  # q, k in and out; one row of cos and sin
        return [Case(f"q 1x32x{TOKENS}x128, k 1x8x{TOKENS}x128", (q, k, cos, sin, None, 0, False), quick=True),
                Case(f"decode q 8x32x1x128, k 8x8x1x128 at {TOKENS - 1}", (qd, kd, cos, sin, None, TOKENS - 1, False),
                     decode_bytes)]
    if name == "kv_cache_append":
        k, v = randn(1, 32, 512, 128), randn(1, 32, 512, 128)
        kd, vd = randn(8, 8, 1, 128), randn(8, 8, 1, 128)
        return [Case("caches 1x32x4096x128, 512 new rows at 1024",
                     (randn(1, 32, 4096, 128), randn(1, 32, 4096, 128), k, v, 1024), 2 * (k.numel() + v.numel()) * e,
                     quick=True),
                Case("caches 8x8x32768x128, 1 new row at 4096",
                     (randn(8, 8, 32768, 128), randn(8, 8, 32768, 128), kd, vd, 4096), 2 * (kd.numel() + vd.numel()) * e)]
    return []


DECODE_GRID = [(b, n, 128) for n in (512, 2048, 8192, 32768) for b in (1, 4, 8)] + [
    (b, n, 64) for n in (2048, 32768) for b in (1, 8)]
# Several new tokens a step (speculative decoding, a chunk of a prompt): (batch, tokens, N, D). The tokens see the
# cache and, causally, each other, through a boolean mask as transformers builds one for SDPA (PyTorch's is_causal
# is upper-left, which is not a decode step's causality once the cache is longer than the tokens).
MULTI_TOKEN_DECODE_GRID = [(1, 4, 8192, 128), (1, 8, 8192, 128), (4, 8, 32768, 128)]
PREFILL_GRID = [(512, 128), (2048, 128), (8192, 128), (2048, 64), (2048, 80), (2048, 96)]
MASKED_PREFILL = (2048, 128)  # an additive causal mask (finfo.min above the diagonal) in place of is_causal


def decode_step_mask(tokens: int, n: int) -> torch.Tensor:
    """True where token i of the `tokens` newest (the last positions of a cache of n) may see key j:
    j <= n - tokens + i."""
    keys = torch.arange(n, device=DEVICE)
    last_visible = n - tokens + torch.arange(tokens, device=DEVICE)
    return (keys[None, :] <= last_visible[:, None])[None, None]


def additive_causal_mask(s: int, dtype: torch.dtype) -> torch.Tensor:
    """0 where query i may see key j (j <= i), finfo.min above the diagonal: the eager path's causal mask."""
    return torch.full((s, s), torch.finfo(dtype).min, device=DEVICE).triu(1).to(dtype)[None, None]


def attention_cases(dtype: torch.dtype) -> list[Case]:
    """Decode: 32 query heads over 8 KV heads (GQA), one new token (or a few, masked) over a cache of exactly N keys.
    Prefill: causal (or an additive mask), same heads. Decode reads K and V once: memory-bound; prefill is not."""
    randn, _, _ = _gen(dtype)
    cases = []
    for b, n, d in DECODE_GRID:
        q, k, v = randn(b, 32, 1, d), randn(b, 8, n, d), randn(b, 8, n, d)
        cases.append(Case(f"decode B{b} H32/8 N{n} D{d}", (q, k, v, None, False, None, None),
                          quick=(b, n, d) == (4, 8192, 128)))
    for b, t, n, d in MULTI_TOKEN_DECODE_GRID:
        q, k, v = randn(b, 32, t, d), randn(b, 8, n, d), randn(b, 8, n, d)
        cases.append(Case(f"decode B{b} H32/8 Sq{t} N{n} D{d}, causal bool mask",
                          (q, k, v, decode_step_mask(t, n), False, None, None)))
    for s, d in PREFILL_GRID:
        q, k, v = randn(1, 32, s, d), randn(1, 8, s, d), randn(1, 8, s, d)
        cases.append(Case(f"prefill causal B1 H32/8 S{s} D{d}", (q, k, v, None, True, None, None), None,
                          quick=(s, d) == (2048, 128)))
    s, d = MASKED_PREFILL
    q, k, v = randn(1, 32, s, d), randn(1, 8, s, d), randn(1, 8, s, d)
    cases.append(Case(f"prefill additive mask B1 H32/8 S{s} D{d}", (q, k, v, additive_causal_mask(s, dtype), False,
                                                                        None, None), None))
    return cases


# LLaMA-7B projections as (N, K): q/k/v/o (4096 x 4096), gate/up (11008 x 4096), down (4096 x 11008).
QUANTIZED_WEIGHTS = [(HIDDEN, HIDDEN), (MLP, HIDDEN), (HIDDEN, MLP)]
QUANTIZED_ROWS = (1, 64, 512, 2048)  # decode (the matrix-vector kernel), then prefill chunks (the tiled one)
# LLaMA-2-70B's gate/up projection, 4-bit decode only: 117 MiB of packed weights, past the L2 cache of the GPUs
# the lane runs on (50-60 MiB), where every LLaMA-7B matrix above stays cached between launches. Its % of copy
# says how the decode kernel streams weights from memory, as it must on a Mac; the 7B rows mostly measure latency.
QUANTIZED_PAST_L2 = (28672, 8192)


def quantized_cases(dtype: torch.dtype) -> list[Case]:
    """Weight-only 4-bit (group 64, MLX's anchor format) at LLaMA-7B shapes, and 8-bit decode. Decode reads the
    packed weights once: memory-bound (bytes: every input once, the output once); prefill is compute-bound. The
    weights are quantised on the CPU (float64 arithmetic there), then moved."""
    from mpskernels.quantize.packing import quantize_weight

    randn, _, _ = _gen(dtype)
    cases = []
    for bits, rows in ((4, QUANTIZED_ROWS), (8, (1,))):
        for n, k in QUANTIZED_WEIGHTS:
            w_q, scales, biases = (t.to(DEVICE) for t in quantize_weight(randn(n, k, scale=0.02).cpu(), bits, 64))
            for m in rows:
                cases.append(Case(f"x {m}x{k}, W {n}x{k} {bits}-bit g64", (randn(m, k), w_q, scales, biases, None,
                                                                          bits, 64),
                                  -1 if m == 1 else None, quick=bits == 4 and (n, k) == (HIDDEN, HIDDEN) and m in (1, 512)))
    n, k = QUANTIZED_PAST_L2
    w_q, scales, biases = (t.to(DEVICE) for t in quantize_weight(randn(n, k, scale=0.02).cpu(), 4, 64))
    cases.append(Case(f"x 1x{k}, W {n}x{k} 4-bit g64", (randn(1, k), w_q, scales, biases, None, 4, 64)))
    return cases


def cases_for(name: str, dtype: torch.dtype) -> list[Case]:
    if name == "attention":
        return attention_cases(dtype)
    if name == "quantized_linear":
        return quantized_cases(dtype)
    return activation_cases(name, dtype) or norm_cases(name, dtype) or cache_cases(name, dtype)


CASES_ENV = "MPSKERNELS_LANE_CASES"  # --cases, for the child processes: comma-separated parts of case labels


def selected_cases(name: str, dtype: torch.dtype, quick: bool) -> list[Case]:
    """A family's cases in one dtype (all allocated at once: at most a few GB, the decode grid in float32)."""
    wanted = [part for part in os.environ.get(CASES_ENV, "").split(",") if part]
    return [c for c in cases_for(name, dtype)
            if (c.quick or not quick) and (not wanted or any(part in c.label for part in wanted))]


# PyTorch's native CUDA op in the op's dtype (NVIDIA-tuned; what the hardware allows): kernels/native.py


# ---- results and the float64 oracle ----


def as_tuple(out: Any) -> tuple:
    return () if out is None else tuple(out) if isinstance(out, (tuple, list)) else (out,)


def fresh_args(family, args: tuple) -> tuple:
    """Each implementation gets its own copy of the inputs an op mutates (a kernel that writes nothing must not pass
    on another's writes)."""
    if not family.mutates:
        return args
    return tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)


def results_of(family, args: tuple, out: Any) -> tuple:
    """The op's outputs, then the inputs it mutates (schema order), as the oracle lists them."""
    names = registry.argument_names(family.schema)
    return as_tuple(out) + tuple(args[names.index(m)] for m in family.mutates)


def float64(args: tuple) -> tuple:
    return tuple((a.double() if a.is_floating_point() else a.clone()) if isinstance(a, torch.Tensor) else a
                 for a in args)


def oracle(family, args: tuple) -> tuple:
    """The family's reference in float64. Attention runs per (batch, KV head) so a long prefill's float64 scores
    (heads x S x S) stay a few GB."""
    if family.name != "attention":
        a = float64(args)
        return results_of(family, a, family.reference(*a))
    q, k, v, mask, causal, scale, kv_len = args
    group = q.shape[1] // k.shape[1]
    out = torch.empty(q.shape, dtype=torch.float64, device=q.device)
    for b in range(q.shape[0]):
        for h in range(k.shape[1]):
            heads = slice(h * group, (h + 1) * group)
            m = None if mask is None else mask.double()  # the cases' masks broadcast over batch and heads
            out[b:b + 1, heads] = family.reference(q[b:b + 1, heads].double(), k[b:b + 1, h:h + 1].double(),
                                                   v[b:b + 1, h:h + 1].double(), m, causal, scale, kv_len)
    return (out,)


class Expected(tuple):
    """The float64 results, as the oracle lists them, and `slack`: per result, how far beyond the dtype's tolerance a
    result may be, by the verifier's rule (mpskernels.verify.check): twice PyTorch's own error in the dtype plus rtol
    times the result's RMS. A long reduction in fp32 or a half-precision op is then held to what PyTorch's own kernel
    achieves in that dtype, as the unit tests hold our kernels."""

    slack: tuple = ()


def expected(family, args: tuple, dtype: torch.dtype) -> Expected:
    want = Expected(oracle(family, args))
    rtol = tolerance_for(dtype).rtol
    fn, _ = native_fn(family)
    mine = fresh_args(family, args)
    try:
        with torch.no_grad():
            in_dtype = results_of(family, mine, fn(*mine))
    except Exception:  # noqa: BLE001  (no PyTorch result in this dtype: the RMS term alone)
        in_dtype = (None,) * len(want)
    want.slack = tuple(
        rtol * finite_rms(w) + (0.0 if r is None or r.shape != w.shape else
                          (REFERENCE_ERROR_FACTOR * (r.double() - w).abs()).nan_to_num(nan=0.0, posinf=0.0))
        for r, w in zip(in_dtype, want))
    return want


def max_abs_error(got: tuple, want: Expected, dtype: torch.dtype) -> tuple[float, str, bool]:
    """(largest |got - want| over every result; "" when all are within the dtype's tolerance plus the slack, else
    why not; whether every result is at least plausible: within PLAUSIBLE times the dtype's tolerance at the
    result's largest magnitude, as rounding in the op's own dtype can be, where a wrong element or a missed block
    is not)."""
    if len(got) != len(want):
        return math.nan, f"{len(got)} results, the reference has {len(want)}", False
    tol, worst, bad, plausible = tolerance_for(dtype), 0.0, [], True
    for i, (g, w) in enumerate(zip(got, want)):
        if tuple(g.shape) != tuple(w.shape):
            return math.nan, f"result {i}: shape {tuple(g.shape)}, the reference's is {tuple(w.shape)}", False
        a = g.detach().double()
        diff = (a - w).abs()
        both_nan = a.isnan() & w.isnan()
        same_inf = a.isinf() & w.isinf() & (a == w)
        finite = ~(both_nan | same_inf)
        slack = want.slack[i] if i < len(want.slack) else 0.0
        out = finite & ~(diff <= tol.atol + tol.rtol * w.abs() + slack)
        largest = float(diff[finite].max()) if finite.any() else 0.0
        worst = max(worst, largest)
        magnitude = float(w[w.isfinite()].abs().max()) if w.isfinite().any() else 0.0
        plausible &= bool(largest <= PLAUSIBLE * (tol.atol + tol.rtol * magnitude))
        if out.any():
            bad.append(f"result {i}: {int(out.sum())} of {out.numel()} elements outside atol {tol.atol} "
                       f"rtol {tol.rtol} and the verifier's slack")
    return worst, "; ".join(bad), plausible


# ---- timing ----


def _events():
    return torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)


def stream_us(fn: Callable[[], Any], batches: int = 7, batch_ms: float = 2.0) -> float:
    """Median over batches of back-to-back calls (about `batch_ms` each, up to 50 calls), per call."""
    return timing.median_us(fn, batches, warmup=0, batch_ms=batch_ms, max_batch=50)


def graph_us(fn: Callable[[], Any], n: int, replays: int = 9) -> float:
    """Median over replays of a CUDA graph of n launches, per launch. CuPy launches on its current stream, so the
    capture makes PyTorch's capture stream CuPy's current one too."""
    cp = runner.cupy()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        with cp.cuda.ExternalStream(torch.cuda.current_stream().cuda_stream):
            for _ in range(n):
                fn()
    graph.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(replays):
        start, end = _events()
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1000 / n)
    del graph
    return statistics.median(times)


def measure(fn: Callable[[], Any]) -> tuple[float, str]:
    """(µs per call, how it was timed). Warm-up first; short kernels as a CUDA graph so host cost is not counted."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    us = stream_us(fn)
    if us >= GRAPH_BELOW_US:
        # Timed again, the lower of the two kept: a slow stretch of the GPU would otherwise both inflate the time and
        # skip the graph timing (the run at 58b434e timed a 32 us layer_norm at 251 us on the stream, once).
        us = min(us, stream_us(fn))
    if us >= GRAPH_BELOW_US:
        return us, "stream"
    n = max(2, min(100, int(2000 / max(us, 1.0))))
    try:
        return graph_us(fn, n), f"graph x{n}"
    except Exception as e:  # noqa: BLE001  (a launcher that cannot be captured is timed on the stream)
        try:
            torch.cuda.synchronize()
        except Exception:  # noqa: BLE001
            pass
        return us, f"stream (graph capture failed: {type(e).__name__}: {str(e)[:120]})"


def run_checked(launch: Callable[[], Any], results: Callable[[Any], tuple], want: Expected, dtype: torch.dtype,
                kernels: tuple[str, ...] = (), baseline: bool = False, anchor: bool = False) -> Result:
    """Runs once, compares with the oracle, times it. Outside the tolerance, ours or an anchor's is "wrong" (timed,
    never compared); a PyTorch baseline is "loose" (its own rounding between kernels; still the baseline)."""
    try:
        got = results(launch())
        torch.cuda.synchronize()
        err, why, plausible = max_abs_error(got, want, dtype)
        del got
        us, how = (None, "not timed (warm-up pass)") if CHECK_ONLY else measure(launch)
        loose = baseline or (anchor and plausible)
        status = ("loose" if loose else "wrong") if why else "ok"
        if why and anchor and loose:
            why += f" (within {PLAUSIBLE:g}x the tolerance: the anchor's own rounding in {dtype})"
        return Result(us, err, status, why, kernels, how)
    except NotImplementedError as e:
        return Result(None, None, "n/a", str(e)[:300], kernels)
    except Exception as e:  # noqa: BLE001  (every failure goes into its row)
        return Result(None, None, "error", f"{type(e).__name__}: {e}".replace("\n", " ")[:400], kernels)


# ---- the implementations of one case ----


def attention_call(op, args: tuple) -> tuple[tuple, dict]:
    """PyTorch's ops take (query, key, value, attn_mask, *, is_causal, scale), MLX's (q, k, v, *, mask, causal,
    scale). The decode kernels run query lengths up to 8, the prefill ones longer: the other cases are n/a."""
    from mpskernels.anchors.mlx.attention import STEEL_HEAD_DIMS

    q, k, v, mask, causal, scale, kv_len = args
    if kv_len is not None:
        k, v = k[:, :, :kv_len], v[:, :, :kv_len]
    decode_op = "sdpa_vector" in op.name
    if decode_op != (q.shape[2] <= 8):
        raise NotImplementedError(f"{'decode' if decode_op else 'prefill'} kernel; this case is "
                                  f"{'decode' if q.shape[2] <= 8 else 'prefill'}")
    if op.name == "mlx.steel_attention" and q.shape[-1] not in STEEL_HEAD_DIMS:
        raise NotImplementedError(f"instantiated here for head dims {STEEL_HEAD_DIMS}, as MLX's own kernel file")
    params = {} if scale is None else {"scale": scale}
    if op.anchor == "torch":
        return (q, k, v) + ((mask,) if mask is not None else ()), {**params, "is_causal": causal}
    return (q, k, v), {**params, "causal": causal, **({"mask": mask} if mask is not None else {})}


def quantized_call(op, args: tuple) -> tuple[tuple, dict]:
    """MLX's qmv and qmm_t take (x, w, scales, biases), instantiated for 4 bits in groups of 64 without a bias;
    each runs the row counts MLX's host gives it (rows below the qmv batch limit: qmv; above: qmm_t, unless MLX
    splits K, whose kernel is not instantiated)."""
    from mpskernels.anchors.mlx.quantized import qmv_batch_limit, splitk_partitions

    x, w_q, scales, biases, bias, bits, group_size = args
    if (bits, group_size) != (4, 64) or bias is not None:
        raise NotImplementedError("MLX's anchor kernels are instantiated for 4 bits, group size 64, no bias")
    k, n = x.shape[-1], w_q.shape[0]
    m = x.numel() // k
    vector = m < qmv_batch_limit(k, n)
    if (op.name == "mlx.affine_qmv") != vector:
        raise NotImplementedError(f"MLX runs {'qmv' if vector else 'qmm'} for {m} rows")
    if not vector and splitk_partitions(m, n, k) > 1:
        raise NotImplementedError(f"MLX splits K in {splitk_partitions(m, n, k)} here (affine_qmm_t_splitk and a "
                                  f"reduction: not instantiated)")
    return (x, w_q, scales, biases), {}


# Anchor ops whose call differs from anchor_call's default, by name or by "anchor:family".
ADAPTERS: dict[str, Callable[[Any, tuple], tuple[tuple, dict]]] = {
    "torch:attention": attention_call,
    "mlx:attention": attention_call,
    "mlx:quantized_linear": quantized_call,
}
# Anchor ops registered for a family that are not the whole op, or that another entry already times.
EXCLUDED = {
    "mlx.logsumexp": "the first of mlx.log_softmax's two kernels (mlx.log_softmax times the op)",
    "mlx.sdpa_decode": "MLX's route between mlx.sdpa_vector and mlx.sdpa_vector_2pass, both timed under their names",
}
# (anchor op, dtype) -> why its source did not compile: later cases say so without compiling again.
COMPILE_FAILURES: dict[tuple[str, str], str] = {}
# Extra settings of an anchor op timed as entries of their own: "name setting".
VARIANTS = {"mlx.softmax": {"precise=True": {"precise": True}}}


def anchor_entries(ops: list) -> list[tuple[str, Any, dict]]:
    """(entry name, op, extra keyword params) for every anchor timing of a family."""
    out = []
    for op in ops:
        if op.name in EXCLUDED:
            continue
        out.append((op.name, op, {}))
        out += [(f"{op.name} {label}", op, extra) for label, extra in VARIANTS.get(op.name, {}).items()]
    return out


def anchor_call(family, op, args: tuple) -> tuple[tuple, dict]:
    """Our family's tensor arguments positionally (trailing None tensors left out), the others as keywords by
    schema name where they differ from the schema default; ADAPTERS where the op's own convention differs."""
    adapter = ADAPTERS.get(op.name) or ADAPTERS.get(f"{op.anchor}:{family.name}")
    if adapter is not None:
        return adapter(op, args)
    schema = registry.schema_arguments(family.schema)
    defaults = registry.RUNNERS[family.name].defaults
    tensors, params = [], {}
    for (type_, name), value in zip(schema, args):
        if type_.startswith("Tensor"):
            tensors.append(value)
        elif name not in defaults or defaults[name] != value:
            params[name] = value
    while tensors and tensors[-1] is None:
        tensors.pop()
    return tuple(tensors), params


def ours(family, args: tuple, want: tuple, dtype: torch.dtype) -> Result:
    try:
        call = runner.prepare(family, fresh_args(family, args), poison=True)
    except runner.Unsupported as e:
        return Result(None, None, "n/a", f"our op sends these inputs to its reference: {e}")
    except Exception as e:  # noqa: BLE001
        return Result(None, None, "error", f"{type(e).__name__}: {e}".replace("\n", " ")[:400])
    if call.plan is None:
        return Result(None, None, "n/a", "nothing to launch")
    return run_checked(call.launch, lambda _: call.results(), want, dtype, (call.plan.kernel,))


def anchor(family, op, args: tuple, want: tuple, dtype: torch.dtype, extra: dict | None = None) -> Result:
    mine = fresh_args(family, args)
    missing = {str(a.dtype) for a in args if isinstance(a, torch.Tensor) and a.is_floating_point()} - {
        str(d) for d in op.dtypes}
    if missing:
        return Result(None, None, "n/a", f"not instantiated for {', '.join(sorted(missing))}")
    try:
        inputs, params = anchor_call(family, op, mine)
        params.update(extra or {})
        inspect.signature(op.prepare_fn).bind("cuda", *inputs, **params)
    except NotImplementedError as e:
        return Result(None, None, "n/a", str(e)[:300])
    except TypeError as e:  # the op's signature has no place for an argument this case needs (a mask, dim=1)
        return Result(None, None, "n/a", f"the anchor op does not take this case's arguments: {e}")
    key = (op.name, str(dtype))
    if key in COMPILE_FAILURES:
        return Result(None, None, "error", COMPILE_FAILURES[key])
    try:
        prepared = op.prepare(*inputs, backend="cuda", **params)
    except Exception as e:  # noqa: BLE001  (a compile error, a refused shape: the row says so)
        note = f"prepare: {type(e).__name__}: {e}".replace("\n", " ")[:400]
        if any(word in type(e).__name__ for word in ("Compile", "Nvrtc", "AnchorSource")):
            COMPILE_FAILURES[key] = note  # the same source fails the same way for every case: not retried
        return Result(None, None, "error", note)

    def results(_):
        if prepared.out is None and family.mutates:
            return results_of(family, mine, None)
        return as_tuple(prepared.out)

    return run_checked(prepared.launch, results, want, dtype, tuple(prepared.kernels), anchor=True)


def torch_result(family, fn: Callable[..., Any], args: tuple, want: tuple, dtype: torch.dtype, note: str) -> Result:
    mine = fresh_args(family, args)
    result = run_checked(lambda: fn(*mine), lambda out: results_of(family, mine, out), want, dtype, baseline=True)
    if note:
        result.note = f"{note}; {result.note}" if result.note else note
    return result


class Compiled:
    """torch.compile of each family's written-out form (its reference: fp32 math, cast back), one per family;
    dynamo recompiles per dtype and shape. Compiling stops when the budget is spent (rows then say so)."""

    def __init__(self, budget_s: float):
        import torch._dynamo

        for knob in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit",
                     "accumulated_cache_size_limit"):
            if hasattr(torch._dynamo.config, knob):
                setattr(torch._dynamo.config, knob, 1024)  # past the limit dynamo runs eager silently
        self.fns: dict[str, Callable[..., Any]] = {}
        self.budget_s, self.spent_s = budget_s, 0.0

    def result(self, family, args: tuple, want: tuple, dtype: torch.dtype) -> Result:
        if self.spent_s > self.budget_s:
            return Result(None, None, "n/a", f"not compiled: compile budget of {self.budget_s:.0f} s spent")
        fn = self.fns.setdefault(family.name, torch.compile(family.reference, fullgraph=True))
        mine = fresh_args(family, args)
        start = time.perf_counter()
        try:
            fn(*mine)  # the compile, outside the timed and checked run
            torch.cuda.synchronize()
        except Exception as e:  # noqa: BLE001
            return Result(None, None, "error", f"compile: {type(e).__name__}: {e}".replace("\n", " ")[:400])
        finally:
            self.spent_s += time.perf_counter() - start
        return torch_result(family, fn, args, want, dtype, "")


def l2_bytes() -> int:
    return int(getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 0))


def footprint(args: tuple, want: tuple) -> int:
    seen = [a for a in args if isinstance(a, torch.Tensor)]
    return sum(a.numel() * a.element_size() for a in seen) + sum(w.numel() * seen[0].element_size() for w in want)


def minimum_bytes(family, args: tuple, want: tuple, dtype: torch.dtype) -> int:
    """Inputs read once (those the op mutates excluded: only the rows written count, in the outputs' place) and every
    result written once."""
    names = registry.argument_names(family.schema)
    e = torch.empty((), dtype=dtype).element_size()
    read = sum(a.numel() * a.element_size() for n, a in zip(names, args)
               if isinstance(a, torch.Tensor) and n not in family.mutates)
    return read + sum(w.numel() * e for w in want)


SAME_SIZE_COPY_US: dict[int, float] = {}  # bytes -> µs, one timing per size in a process


def same_size_copy_us(nbytes: int) -> float | None:
    """A device copy of `nbytes` (half read, half written) timed as the kernels are (measure: warm, a CUDA graph for
    short ones); None in the warm-up pass, which times nothing."""
    if CHECK_ONLY or nbytes < 2:
        return None
    if nbytes not in SAME_SIZE_COPY_US:
        src = torch.empty(nbytes // 2, dtype=torch.uint8, device=DEVICE)
        dst = torch.empty_like(src)
        SAME_SIZE_COPY_US[nbytes] = measure(lambda: dst.copy_(src))[0]
        del src, dst
    return SAME_SIZE_COPY_US[nbytes]


def run_case(family, dtype: torch.dtype, case: Case, anchors: list, compiled: Compiled | None,
             with_torch: bool = True) -> Row:
    """One case: ours, each anchor kernel, and (with_torch) PyTorch's native op and torch.compile."""
    want = expected(family, case.args, dtype)
    moved = case.bytes_moved if case.bytes_moved != -1 else minimum_bytes(family, case.args, want, dtype)
    row = Row(family.name, str(dtype).replace("torch.", ""), case.label, moved, ours(family, case.args, want, dtype),
              fits_l2=footprint(case.args, want) <= l2_bytes(),
              same_size_copy_us=same_size_copy_us(moved) if moved else None)
    for name, op, extra in anchor_entries(anchors):
        row.anchors[name] = anchor(family, op, case.args, want, dtype, extra)
    if with_torch:
        fn, note = native_fn(family)
        row.torch_native = torch_result(family, fn, case.args, want, dtype, note)
    if compiled is not None:
        row.torch_compile = compiled.result(family, case.args, want, dtype)
    del want
    return row


# ---- the run ----


def copy_bandwidth_gbps(nbytes: int = 2**30) -> float:
    src = torch.empty(nbytes // 4, dtype=torch.float32, device="cuda").uniform_()
    dst = torch.empty_like(src)
    us = stream_us(lambda: dst.copy_(src), batch_ms=5.0)
    return 2 * nbytes / (us * 1e-6) / 1e9  # read + write


def git_commit() -> str:
    """MPSKERNELS_GIT_COMMIT names it where the checkout travelled without its .git (the device machine)."""
    if os.environ.get("MPSKERNELS_GIT_COMMIT"):
        return os.environ["MPSKERNELS_GIT_COMMIT"]
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip() or "unknown"
    except Exception:  # noqa: BLE001
        return "unknown"


def machine() -> dict[str, str]:
    from mpskernels.anchors.sources import MLX_METAL_VERSION

    props = torch.cuda.get_device_properties(0)
    env = {"machine": f"{platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs)",
           "GPU": f"{props.name} ({props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs, "
                  f"L2 {l2_bytes() / 2**20:.0f} MiB, compute capability {props.major}.{props.minor})",
           "PyTorch": torch.__version__, "CUDA (PyTorch)": str(torch.version.cuda), "Python": platform.python_version()}
    try:
        cp = runner.cupy()
        major, minor = cp.cuda.nvrtc.getVersion()
        env.update({"CuPy": cp.__version__, "NVRTC": f"{major}.{minor}",
                    "driver": str(cp.cuda.runtime.driverGetVersion())})
    except Exception as e:  # noqa: BLE001
        env["CuPy"] = f"unavailable: {e}"
    env["anchors"] = (f"MLX kernel headers of mlx-metal {MLX_METAL_VERSION}; PyTorch MPS kernel headers from "
                      f"{os.environ.get('MPSKERNELS_TORCH_METAL_INCLUDE', 'the installed torch')}"
                      f"{' (torch ' + os.environ['MPSKERNELS_TORCH_HEADERS_VERSION'] + ')' if os.environ.get('MPSKERNELS_TORCH_HEADERS_VERSION') else ''}")
    env["mpskernels commit"] = git_commit()
    env["date (UTC)"] = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    return env


def anchors_for(name: str, notes: list[str]) -> list:
    try:
        from mpskernels import anchors
        from mpskernels.anchors import mlx, torch_mps  # noqa: F401  (importing registers their ops)

        return anchors.for_family(name)
    except Exception as e:  # noqa: BLE001
        notes.append(f"anchors for {name}: {type(e).__name__}: {e}")
        return []


def progress(row: Row, seconds: float) -> str:
    def t(r):
        return "—" if r is None else f"{r.us:.1f}" if r.ok else r.status

    anchors = ", ".join(f"{k} {t(v)}" for k, v in row.anchors.items()) or "no anchor"
    return (f"  {row.dtype:8} {row.case}: ours {t(row.ours)} µs | {anchors} | torch {t(row.torch_native)} | "
            f"compile {t(row.torch_compile)} ({seconds:.1f} s)")


def data_name(json_file: str | Path) -> str:
    """How a page names its JSON: relative to the repository where it lies inside it (docs/anchor-lane.json)."""
    path = Path(json_file).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def write(report: AnchorLaneReport, out: Path) -> None:
    text = to_markdown(report, data_name(out.with_suffix(".json")))
    data = json.dumps(to_json(report), indent=1)
    out.write_text(text)
    out.with_suffix(".json").write_text(data)
    if os.environ.get("OUT"):  # the device machine sends $OUT back
        Path(os.environ["OUT"], out.name).write_text(text)
        Path(os.environ["OUT"], out.with_suffix(".json").name).write_text(data)


def work_items(opts) -> list[tuple[str, str]]:
    """(dtype, family) in run order: every family in the first dtype (bf16 by default), then the next dtype."""
    wanted = {n for n in opts.families.split(",") if n}
    return [(d, f.name) for d in opts.dtypes.split(",") if d for f in FAMILIES
            if (not wanted or f.name in wanted) and DTYPES[d] in f.dtypes]


def child(opts) -> int:
    """Runs --jobs, appending to --rows (JSON lines) as it goes: the parent reads what a crashed child finished."""
    global CHECK_ONLY
    CHECK_ONLY = opts.check_only
    family_of = {f.name: f for f in FAMILIES}
    compiled = Compiled(opts.compile_budget) if times_compile(opts) else None
    notes: list[str] = []
    with open(opts.rows, "a") as log:
        def emit(**record):
            log.write(json.dumps(record) + "\n")
            log.flush()

        for job in opts.jobs.split(","):
            dtype_name, name = job.split(":")
            family, dtype = family_of[name], DTYPES[dtype_name]
            if time.time() > opts.deadline:
                emit(done=job, not_run=f"{name} {dtype_name}: time budget spent")
                continue
            anchors = [] if opts.ours_only else anchors_for(name, notes)
            print(f"{name} {dtype_name} (anchors: {', '.join(n for n, _, _ in anchor_entries(anchors)) or 'none'})",
                  flush=True)
            try:
                cases = selected_cases(name, dtype, opts.quick)
            except Exception as e:  # noqa: BLE001
                emit(done=job, not_run=f"{name} {dtype_name}: building cases: {type(e).__name__}: {e}")
                continue
            for case in cases:
                emit(start=case.label)
                t0 = time.perf_counter()
                try:
                    row = run_case(family, dtype, case, anchors, compiled, with_torch=not opts.ours_only)
                except Exception as e:  # noqa: BLE001  (the oracle itself failed: say so, go on)
                    row = Row(name, dtype_name, case.label, None,
                              Result(None, None, "error", f"oracle: {type(e).__name__}: {e}"[:400]))
                emit(row=row_json(row, None))
                print(progress(row, time.perf_counter() - t0), flush=True)
            del cases
            torch.cuda.empty_cache()
            emit(done=job, compile_s=compiled.spent_s if compiled else 0.0, notes=notes)
            notes = []
    return 0


@dataclass
class ChildRows:
    rows: list[Row] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)
    finished: set[str] = field(default_factory=set)
    in_case: str | None = None  # the case started and not finished (where a dead child died)
    compile_s: float = 0.0


def read_rows(rows_file: Path) -> ChildRows:
    """What a child has written so far (a line cut short by its death is ignored)."""
    got = ChildRows()
    for line in rows_file.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "row" in record:
            got.rows.append(row_from_json(record["row"]))
            got.in_case = None
        if "start" in record:
            got.in_case = record["start"]
        if "done" in record:
            got.finished.add(record["done"])
            got.in_case = None
            got.compile_s = float(record.get("compile_s", 0.0))  # the child's total so far
            got.not_run += [record["not_run"]] if record.get("not_run") else []
            got.not_run += record.get("notes", [])
    return got


def watch(proc: subprocess.Popen, stop_at: float, every_30s: Callable[[], None]) -> int:
    """Waits for the child; past stop_at it is killed (the one we started, by its id). The report is rewritten
    every 30 s, so a run cut short from outside still leaves what it measured."""
    last = time.time()
    while proc.poll() is None:
        if time.time() > stop_at:
            proc.kill()
            return proc.wait()
        time.sleep(1.0)
        if time.time() - last > 30:
            every_30s()
            last = time.time()
    return proc.returncode


def write_partial(report: AnchorLaneReport, rows_file: Path, out: Path | None) -> None:
    if out is None:
        return
    done = read_rows(rows_file)
    write(AnchorLaneReport(report.machine, report.copy_gbps, report.rows + done.rows,
                           report.not_run + done.not_run + ["(a partial report: the run was still going)"]), out)


def times_compile(opts) -> bool:
    """Whether the run times torch.compile: not with --no-compile, nor in an --ours-only A/B."""
    return not (opts.no_compile or opts.ours_only)


def child_flags(opts) -> list[str]:
    """The options a child process (timed or warm-up) takes over from the parent's command line."""
    return ["--quick"] * opts.quick + ["--ours-only"] * opts.ours_only


def warm_caches(opts, stop_at: float) -> float:
    """Compiles every kernel the run will time, in `opts.warm` processes at once, so the timed run finds them in
    CuPy's disk cache: NVRTC compiles one translation unit on one core, and PyTorch's prefill header alone takes
    minutes. Each warm process runs and checks every case once and times nothing; its rows are dropped (the timed run
    checks each kernel again). Returns the seconds it took."""
    started = time.time()
    jobs = [f"{d}:{f}" for d, f in work_items(opts)]
    scratch = Path(os.environ.get("TMPDIR", "/tmp"))
    procs = []
    for i in range(min(opts.warm, len(jobs))):
        command = [sys.executable, str(Path(__file__).resolve()), "--child", "--check-only", "--no-compile",
                   "--rows", str(scratch / f"anchor-lane-warm-{i}.jsonl"), "--jobs", ",".join(jobs[i::opts.warm]),
                   "--deadline", str(stop_at)]
        command += child_flags(opts)
        procs.append(subprocess.Popen(command, stdout=subprocess.DEVNULL))
    for proc in procs:
        watch(proc, stop_at, lambda: None)
    return time.time() - started


def run(opts, out: Path | None = None) -> AnchorLaneReport:
    """Runs the jobs in a child process; a child that dies (a CUDA error is sticky: one bad kernel would fail every
    later row) or hangs is replaced by a fresh one for the jobs left, and the case it died in says so."""
    report = AnchorLaneReport(machine())
    if opts.ours_only:
        report.machine["timed"] = "our kernels only (--ours-only: one side of an A/B, benches/lane_compare.py)"
    started = time.time()
    report.copy_gbps = copy_bandwidth_gbps()
    torch.cuda.empty_cache()
    print(f"copy bandwidth {report.copy_gbps:.0f} GB/s", flush=True)
    if opts.warm:
        warm_s = warm_caches(opts, started + opts.warm_budget)
        report.machine["kernel compile (warm-up pass)"] = f"{warm_s:.0f} s in {opts.warm} processes"
        print(f"warm-up pass: {warm_s:.0f} s", flush=True)
    pending, compile_spent = work_items(opts), 0.0
    rows_file = (out or Path("anchor-lane.md")).with_suffix(".rows.jsonl")
    deadline = started + opts.budget
    while pending:
        if time.time() > deadline:  # a child stopped past it: the jobs left are not started
            report.not_run += [f"{f} {d}: time budget of {opts.budget:.0f} s spent" for d, f in pending]
            break
        rows_file.write_text("")
        command = [sys.executable, str(Path(__file__).resolve()), "--child", "--rows", str(rows_file),
                   "--jobs", ",".join(f"{d}:{f}" for d, f in pending), "--deadline", str(deadline),
                   "--compile-budget", str(max(0.0, opts.compile_budget - compile_spent))]
        command += child_flags(opts) + ["--no-compile"] * opts.no_compile
        proc = subprocess.Popen(command)
        code = watch(proc, deadline + opts.grace, lambda: write_partial(report, rows_file, out))
        done = read_rows(rows_file)
        report.rows += done.rows
        report.not_run += done.not_run
        compile_spent += done.compile_s
        crashed = next((job for job in pending if f"{job[0]}:{job[1]}" not in done.finished), None)
        pending = [job for job in pending if f"{job[0]}:{job[1]}" not in done.finished]
        if crashed is not None:
            why = (f"the process {'was stopped past the budget' if code == -9 else f'exited with {code}'} in this "
                   "case; the jobs left run in a fresh process while the budget lasts")
            report.rows.append(Row(crashed[1], crashed[0], done.in_case or "(before its first case)", None,
                                   Result(None, None, "error", why)))
            pending.remove(crashed)
        if out is not None:
            write(report, out)
    if times_compile(opts):
        report.machine["torch.compile time"] = f"{compile_spent:.0f} s (budget {opts.compile_budget:.0f} s)"
    report.machine["lane wall time"] = f"{time.time() - started:.0f} s"
    return report


def arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="", help="comma-separated family names (default: all)")
    parser.add_argument("--dtypes", default="bfloat16,float16,float32")
    parser.add_argument("--quick", action="store_true", help="one or two cases per family (a smoke run)")
    parser.add_argument("--cases", default="", help="only cases whose label contains one of these comma-separated "
                        "parts (e.g. 'decode B1 ,N512'): a side-by-side run of a few cases")
    parser.add_argument("--no-compile", action="store_true", help="leave torch.compile out")
    parser.add_argument("--compile", dest="no_compile", action="store_false",
                        help="time torch.compile after all (undoes an earlier --no-compile: lane_stage's run.sh)")
    parser.add_argument("--compile-budget", type=float, default=180.0, help="seconds of torch.compile at most")
    parser.add_argument("--budget", type=float, default=420.0, help="start no family after this many seconds")
    parser.add_argument("--out", default=str(ROOT / "docs" / "anchor-lane.md"))
    parser.add_argument("--render", metavar="JSON", nargs="+",
                        help="write the Markdown from an earlier run's JSON; runs nothing. Several runs of one commit "
                             "are merged (a later run's rows replace an earlier's) and their JSON written beside it")
    parser.add_argument("--grace", type=float, default=150.0,
                        help="seconds a child may run past the budget (its last family) before it is stopped")
    parser.add_argument("--warm", type=int, default=0, metavar="N",
                        help="first compile every kernel in N processes at once (no timing), then time them in one")
    parser.add_argument("--warm-budget", type=float, default=240.0,
                        help="seconds the warm-up pass may take (counted in --budget)")
    parser.add_argument("--ours-only", action="store_true",
                        help="time and check our kernels only, no anchor, torch or torch.compile: one side of an A/B "
                             "of two staged trees (benches/lane_compare.py), in a fraction of a full run's time")
    parser.add_argument("--check-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--jobs", help=argparse.SUPPRESS)
    parser.add_argument("--rows", help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    return parser


def main() -> int:
    opts = arguments().parse_args()
    if opts.cases:
        os.environ[CASES_ENV] = opts.cases
    if opts.child:
        return child(opts)
    out = Path(opts.out)
    if opts.render:
        reports = [from_json(json.loads(Path(f).read_text())) for f in opts.render]
        if len(reports) == 1:
            out.write_text(to_markdown(reports[0], data_name(opts.render[0])))
        else:
            write(merge_reports(reports), out)
        print(f"wrote {out}")
        return 0
    if not torch.cuda.is_available():
        print("anchor_lane: no CUDA device", file=sys.stderr)
        return 2
    report = run(opts, out)
    write(report, out)
    bad = sum(1 for r in report.rows if r.ours.status in ("wrong", "error"))
    print(f"wrote {out} and {out.with_suffix('.json').name}: {len(report.rows)} rows, {bad} with our kernel failing",
          flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        traceback.print_exc()
        sys.exit(3)
