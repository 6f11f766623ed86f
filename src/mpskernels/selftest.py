"""`mpskernels selftest`: every kernel family on this machine, checked against float64 and, on an Apple GPU, timed
against PyTorch's own op; then optimize() on the demo decoder. The report is meant to be attached to an issue.

On a Mac (MPS) each family runs its declared examples and model-sized cases (LLaMA-3.2-1B's dimensions: decode
rows and a 512-token prefill) on the GPU through the backend optimize() would use, and each model-sized case is
timed against PyTorch's op on MPS with the bench's interleaved timing. Elsewhere the kernels run on the CPU
emulator: the declared examples only, correctness only, and the report says so.

Every result is held to the verifier's rule (mpskernels.verify.check): the dtype's tolerance, plus twice PyTorch's
own error in the dtype, plus rtol times the result's RMS, against the family's reference computed in float64. A
case also fails when the kernel was never launched (the op fell back to its reference).
"""

from __future__ import annotations

import platform
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch

from . import __version__, launches, registry
from .bench.timing import TimingOptions, time_interleaved
from .kernels import FAMILIES
from .kernels.native import native_fn
from .kernels.spec import KernelFamily
from .runtime import choose_backend, use_backend
from .tolerances import compare, finite_rms, tolerance_for
from .verify.check import REFERENCE_ERROR_FACTOR

# LLaMA-3.2-1B: hidden 2048, MLP 8192, 32 query heads over 8 KV heads of 64; a 512-token prompt, a 2048-token cache.
HIDDEN, MLP, HEADS, KV_HEADS, HEAD_DIM, PROMPT, CACHE = 2048, 8192, 32, 8, 64, 512, 2048


@dataclass
class CaseResult:
    family: str
    dtype: str
    case: str
    ok: bool
    detail: str  # the comparison, or the failure in full
    launches: int = 0
    ours_ms: float | None = None
    torch_ms: float | None = None
    baseline: str = ""  # what the time is compared with (PyTorch's native op, or the written-out form)

    @property
    def speedup(self) -> float | None:
        return self.torch_ms / self.ours_ms if self.ours_ms and self.torch_ms else None


@dataclass
class SelftestReport:
    machine: dict[str, str]
    backend: str
    mode: str  # what was measured: "correctness and speed on the GPU" or "correctness only (emulator)"
    cases: list[CaseResult] = field(default_factory=list)
    optimize_summary: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def failures(self) -> list[CaseResult]:
        return [c for c in self.cases if not c.ok]

    @property
    def ok(self) -> bool:
        return not self.failures and self.optimize_summary.get("ok", False)


# ---- cases ----


def _randn(dtype: torch.dtype, device: str, *shape: int, scale: float = 1.0) -> torch.Tensor:
    return (torch.randn(*shape) * scale).to(device=device, dtype=dtype)


def model_cases(family: KernelFamily, dtype: torch.dtype, device: str) -> list[tuple[str, tuple]]:
    """Model-sized argument tuples for a family (decode rows and a prompt's rows), or none for families sized
    otherwise."""
    r = lambda *shape, scale=1.0: _randn(dtype, device, *shape, scale=scale)  # noqa: E731
    w = lambda n: (torch.rand(n) + 0.5).to(device=device, dtype=dtype)  # noqa: E731
    rows = (("decode", 1), ("prefill", PROMPT))
    name = family.name
    if name in ("silu", "mish", "hardswish", "gelu"):
        return [(f"{label} x {n}x{MLP}", (r(n, MLP, scale=3),)) for label, n in rows]
    if name in ("swiglu", "geglu"):
        return [(f"{label} a, b {n}x{MLP}", (r(n, MLP, scale=3), r(n, MLP))) for label, n in rows]
    if name in ("swiglu_split", "geglu_split"):
        return [(f"{label} x {n}x{2 * MLP}", (r(n, 2 * MLP, scale=3),)) for label, n in rows]
    if name == "bias_act":
        return [(f"{label} x {n}x{MLP}, gelu", (r(n, MLP), r(MLP), "gelu", -1)) for label, n in rows]
    if name in ("rms_norm", "add_rms_norm", "layer_norm", "add_layer_norm"):
        out = []
        for label, n in rows:
            residual = (r(n, HIDDEN),) if name.startswith("add_") else ()
            bias = (r(HIDDEN),) if name.endswith("layer_norm") else ()
            out.append((f"{label} x {n}x{HIDDEN}", (r(n, HIDDEN),) + residual + (w(HIDDEN),) + bias + (1e-5,)))
        return out
    if name in ("softmax", "log_softmax"):
        return [("decode scores 1x32x1x2048", (r(1, HEADS, 1, CACHE, scale=4), None, 1.0)),
                ("vocab 8x32000", (r(8, 32000, scale=4), None, 1.0))]
    if name == "group_norm":
        return [("x 1x320x64x64, 32 groups", (r(1, 320, 64, 64), 32, w(320), r(320), 1e-5))]
    if name == "attention":
        return [(f"decode B1 H{HEADS}/{KV_HEADS} N{CACHE} D{HEAD_DIM}",
                 (r(1, HEADS, 1, HEAD_DIM), r(1, KV_HEADS, CACHE, HEAD_DIM), r(1, KV_HEADS, CACHE, HEAD_DIM),
                  None, False, None, None)),
                (f"prefill causal B1 H{HEADS}/{KV_HEADS} S{PROMPT} D{HEAD_DIM}",
                 (r(1, HEADS, PROMPT, HEAD_DIM), r(1, KV_HEADS, PROMPT, HEAD_DIM), r(1, KV_HEADS, PROMPT, HEAD_DIM),
                  None, True, None, None))]
    if name == "rope":
        from .kernels.rope import tables

        cos, sin = (t.to(device) for t in tables(CACHE, HEAD_DIM, False, dtype))
        return [(f"decode q 1x{HEADS}x1x{HEAD_DIM} at {CACHE - 1}",
                 (r(1, HEADS, 1, HEAD_DIM), r(1, KV_HEADS, 1, HEAD_DIM), cos, sin, None, CACHE - 1, False)),
                (f"prefill q 1x{HEADS}x{PROMPT}x{HEAD_DIM}",
                 (r(1, HEADS, PROMPT, HEAD_DIM), r(1, KV_HEADS, PROMPT, HEAD_DIM), cos, sin, None, 0, False))]
    if name == "quantized_linear":
        from .quantize.packing import quantize_weight

        packed, scales, biases = (t.to(device) for t in quantize_weight(torch.randn(MLP, HIDDEN) * 0.02, 4, 64,
                                                                       dtype))
        return [(f"{label} x {n}x{HIDDEN}, W {MLP}x{HIDDEN} 4-bit g64", (r(n, HIDDEN), packed, scales, biases,
                                                                        None, 4, 64)) for label, n in rows]
    if name == "rope_kv_append":
        from .kernels.rope import tables

        cos, sin = (t.to(device) for t in tables(CACHE, HEAD_DIM, False, dtype))
        q, k, v = r(1, HEADS, 1, HEAD_DIM), r(1, KV_HEADS, 1, HEAD_DIM), r(1, KV_HEADS, 1, HEAD_DIM)
        caches = (r(1, KV_HEADS, CACHE, HEAD_DIM), r(1, KV_HEADS, CACHE, HEAD_DIM))
        return [(f"decode q 1x{HEADS}x1x{HEAD_DIM}, k, v 1x{KV_HEADS}x1x{HEAD_DIM} at {CACHE - 1} into "
                 f"1x{KV_HEADS}x{CACHE}x{HEAD_DIM}",
                 (torch.empty_like(q), torch.empty_like(k), *caches, q, k, v, cos, sin, None, CACHE - 1, False,
                  CACHE - 1))]
    if name == "kv_cache_append":
        return [(f"decode 1 row into 1x{KV_HEADS}x{CACHE}x{HEAD_DIM}",
                 (r(1, KV_HEADS, CACHE, HEAD_DIM), r(1, KV_HEADS, CACHE, HEAD_DIM), r(1, KV_HEADS, 1, HEAD_DIM),
                  r(1, KV_HEADS, 1, HEAD_DIM), CACHE // 2))]
    return []


def example_cases(family: KernelFamily, dtype: torch.dtype, device: str) -> list[tuple[str, tuple]]:
    """The family's declared examples (what the tests run on the emulator), on `device`."""
    moved = lambda a: a.to(device) if isinstance(a, torch.Tensor) else a  # noqa: E731
    out = []
    for i, args in enumerate(family.examples(dtype)):
        shapes = "x".join(str(d) for d in args[0].shape) if isinstance(args[0], torch.Tensor) else "?"
        out.append((f"example {i} ({shapes})", tuple(moved(a) for a in args)))
    return out


# ---- one case ----


def _results(family: KernelFamily, args: tuple, out: Any) -> tuple:
    """The op's outputs, then the inputs it mutates (schema order)."""
    outs = () if out is None else tuple(out) if isinstance(out, (tuple, list)) else (out,)
    names = registry.argument_names(family.schema)
    return outs + tuple(args[names.index(m)] for m in family.mutates)


def _fresh(args: tuple) -> tuple:
    return tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)


def _float64(args: tuple) -> tuple:
    return tuple(a.cpu().double() if isinstance(a, torch.Tensor) and a.is_floating_point() else
                 a.cpu() if isinstance(a, torch.Tensor) else a for a in args)


def check_case(family: KernelFamily, dtype: torch.dtype, label: str, args: tuple) -> CaseResult:
    """Runs the op once and holds every result to the verifier's rule against the float64 reference."""
    result = CaseResult(family.name, str(dtype).removeprefix("torch."), label, False, "")
    try:
        mine = _fresh(args)
        before = launches.count()
        with torch.no_grad():
            got = _results(family, mine, registry.op(family.name)(*mine))
        result.launches = launches.count() - before
        exact64 = _float64(args)
        want = _results(family, exact64, family.reference(*exact64))
        theirs = _fresh(args)  # the same reference in the op's dtype: PyTorch's own rounding error there
        with torch.no_grad():
            in_dtype = _results(family, theirs, family.reference(*theirs))
    except Exception:  # noqa: BLE001  (the report carries the failure in full)
        result.detail = traceback.format_exc()
        return result
    rtol, notes = tolerance_for(dtype).rtol, []
    for i, (g, w, r) in enumerate(zip(got, want, in_dtype)):
        slack = REFERENCE_ERROR_FACTOR * (r.detach().cpu().double() - w).abs().nan_to_num(nan=0.0, posinf=0.0) \
            + rtol * finite_rms(w)
        c = compare(g.cpu(), w, dtype, slack=slack)
        notes.append(f"result {i}: {c}")
        if not c.ok:
            result.detail = "; ".join(notes)
            return result
    result.ok = result.launches > 0
    result.detail = "; ".join(notes) + ("" if result.ok else "; no kernel was launched (the op ran its reference)")
    return result


def time_case(result: CaseResult, family: KernelFamily, args: tuple, synchronize: Callable[[], None],
              options: TimingOptions = TimingOptions(warmup=3, min_runs=10, max_runs=100, budget_s=0.5),
              clock: Callable[[], float] = time.perf_counter) -> None:
    """Times the op against PyTorch's op for the family, interleaved, wall time between synchronisations."""
    op = registry.op(family.name)
    native, what = native_fn(family)
    mine, theirs = _fresh(args), _fresh(args)
    with torch.no_grad():
        timings = time_interleaved({"ours": lambda: op(*mine), "torch": lambda: native(*theirs)}, synchronize,
                                   options, clock)
    result.ours_ms, result.torch_ms, result.baseline = timings["ours"].median_ms, timings["torch"].median_ms, what


# ---- the run ----


def _where() -> tuple[str, str | None, Callable[[], None] | None]:
    """(device, forced backend, synchronize for timing): the GPU where MPS exists, else the CPU emulator."""
    if torch.backends.mps.is_available():
        return "mps", None, torch.mps.synchronize
    return "cpu", "emulator", None


def _forced(backend: str | None) -> Iterator[None]:
    return use_backend(backend) if backend else _Nothing()


class _Nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> bool:
        return False


def machine_facts() -> dict[str, str]:
    from .checkup import diagnose

    facts = {"mpskernels": __version__, "python": platform.python_version(), "torch": torch.__version__}
    facts.update({c.name: c.found for c in diagnose()})
    return facts


def run_selftest(families: list[str] | None = None, dtypes: list[torch.dtype] | None = None,
                 run_optimize: bool = True, progress: Callable[[str], None] = lambda line: None) -> SelftestReport:
    """Checks (and on a GPU times) every family, then optimize() on the demo decoder."""
    start = time.perf_counter()
    device, forced, synchronize = _where()
    with _forced(forced):
        backend, _ = choose_backend(torch.device(device))
        mode = ("correctness and speed on the GPU" if synchronize else
                "correctness only: the kernels ran on the CPU emulator (no Apple GPU here), nothing was timed")
        report = SelftestReport(machine_facts(), backend.name if backend else "reference", mode)
        unknown = set(families or ()) - {f.name for f in FAMILIES}
        if unknown:
            raise ValueError(f"selftest: no kernel family named {', '.join(sorted(unknown))}; the families are "
                             f"{', '.join(f.name for f in FAMILIES)}")
        for family in [f for f in FAMILIES if not families or f.name in families]:
            for dtype in [d for d in family.dtypes if not dtypes or d in dtypes]:
                torch.manual_seed(0)
                cases = [(label, args, False) for label, args in example_cases(family, dtype, device)]
                if synchronize:  # model sizes are timed; on the emulator they would only take long
                    cases += [(label, args, True) for label, args in model_cases(family, dtype, device)]
                for label, args, timed in cases:
                    result = check_case(family, dtype, label, args)
                    if timed and result.ok:
                        time_case(result, family, args, synchronize)
                    report.cases.append(result)
                    progress(_line(result))
        if run_optimize:
            report.optimize_summary = optimize_demo(device)
            progress(f"optimize() on the demo decoder: {report.optimize_summary.get('result')}")
    report.seconds = time.perf_counter() - start
    return report


def _line(r: CaseResult) -> str:
    speed = f", {r.speedup:.2f}x PyTorch's {r.baseline}" if r.speedup else ""
    return f"{'ok  ' if r.ok else 'FAIL'} {r.family} {r.dtype} {r.case}{speed}"


def optimize_demo(device: str) -> dict[str, Any]:
    """optimize() on the demo's LLaMA-style decoder (speed gate on where a GPU backend times swaps): what it kept,
    what it rolled back, and whether the logits still match."""
    from .demo import TinyDecoder
    from .optimize import optimize, restore

    try:
        torch.manual_seed(0)
        model = TinyDecoder().to(device).eval()
        ids = torch.randint(0, 128, (2, 17), device=device)
        with torch.no_grad():
            expected = model(ids)
            optimize(model, example_inputs=(ids,))
            got = model(ids)
        report = model.mpskernels_report
        restore(model)
        same = bool(torch.allclose(got, expected, rtol=1e-4, atol=1e-4))
        return {"ok": same and not report.not_launched, "swapped": len(report.swapped),
                "rolled_back": len(report.rolled_back), "not_launched": len(report.not_launched),
                "timing": report.timing, "logits_match": same, "max_abs_diff": float((got - expected).abs().max()),
                "report": str(report), "entries": report.as_dict()["entries"],
                "result": f"{len(report.swapped)} swapped, {len(report.rolled_back)} rolled back, "
                          f"logits {'match' if same else 'DIFFER'}"}
    except Exception:  # noqa: BLE001  (the report carries the failure in full)
        return {"ok": False, "result": "optimize() failed", "error": traceback.format_exc()}
