"""Hand-built results for the summary and report tests."""

from __future__ import annotations

from mpskernels.bench.results import OK, SKIPPED, BenchReport, CandidateResult, ProblemResult
from mpskernels.bench.timing import Timing

MACHINE = {"chip": "Apple M4 Max", "os": "macOS-15.5-arm64", "python": "3.12.0", "torch": "2.13.0",
           "mpskernels": "0.1.0", "device": "mps", "backend": "metal", "memory_gb": 64.0, "timing": "mps",
           "mps_fallback": False}
UNTIMED_MACHINE = {**MACHINE, "chip": "AMD EPYC", "os": "Linux", "device": "cpu", "backend": "emulator",
                   "timing": "unavailable: no Apple GPU on this machine; correctness ran on the MSL CPU emulator"}


def ms(value: float) -> Timing:
    return Timing(value, value, value, value, value, 10)


def candidate(name="optimize", kind="optimize", correct=True, time_ms=None, baseline_ms=None, **extra):
    speedup = baseline_ms / time_ms if time_ms and baseline_ms and correct else None
    verdict = {"correct": correct, "max_abs": 1e-7, "comparisons": 3 if correct else 1}
    return CandidateResult(name, kind, correct, verdict, "" if correct else "FAIL output 0 matches the reference",
                           time=ms(time_ms) if time_ms and correct else None, speedup=speedup,
                           speedup_vs_eager=speedup, **extra)


def problem(name, *candidates, eager_ms=None, compile_ms=None, level=1, status=OK, reason=""):
    return ProblemResult(name, level, f"benches/problems/level{level}/{name}.py", status, reason,
                         sizes={"batch_size": 16, "dim": 512}, scaled={"dim": 512},
                         file_sizes={"batch_size": 16, "dim": 65536},
                         eager=ms(eager_ms) if eager_ms else None, compile=ms(compile_ms) if compile_ms else None,
                         candidates=list(candidates))


def timed_report() -> BenchReport:
    """Four timed problems: 2x, 1.25x, slower (0.5x, falls back), wrong; and one skipped."""
    problems = [
        problem("a", candidate(time_ms=1.0, baseline_ms=2.0), eager_ms=2.0, compile_ms=3.0),
        problem("b", candidate(time_ms=4.0, baseline_ms=5.0), eager_ms=5.0),
        problem("c", candidate(time_ms=2.0, baseline_ms=1.0), eager_ms=1.0, level=2),
        problem("d", candidate(correct=False), eager_ms=1.0, level=3),
        problem("e", status=SKIPPED, reason="the reference uses an op that mps lacks: aten::foo", level=3),
    ]
    return BenchReport(MACHINE, {"max_elements": 1000}, problems, started="2026-11-30T00:00:00+00:00", seconds=1.0)


def untimed_report() -> BenchReport:
    problems = [problem("a", candidate()), problem("b", candidate(correct=False), level=2)]
    return BenchReport(UNTIMED_MACHINE, {"max_elements": 1000}, problems, started="2026-11-30T00:00:00+00:00")
