"""The harness's results as data: one ProblemResult per problem, one CandidateResult per candidate tried on it.

Speedups are baseline time / candidate time, where the baseline is the faster of eager and torch.compile. The
effective speedup is what a user would get with the baseline as fallback: a wrong candidate, or one slower than
the baseline, counts as 1.0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .timing import Timing

OK, SKIPPED, ERROR = "ok", "skipped", "error"

# What a candidate amounted to on a problem. Only a verified kernel changes what the user runs: a model that
# optimize() left as PyTorch (nothing swapped, or every swap rolled back by its first-call check) is correct but is
# the baseline itself, so it never counts toward a speedup.
KERNEL_VERIFIED, NOTHING_SWAPPED, ROLLED_BACK, WRONG = "kernel verified", "nothing swapped", "rolled back", "wrong"
# The harness could not judge the candidate (the float64 oracle failed, or the harness itself raised): neither the
# candidate's error nor a pass.
HARNESS_FAILURE = "harness failure"
# optimize() swapped kernels in, every check passed, but no kernel launched at the sizes run (the kernels'
# constraints sent every call to the PyTorch reference, as attention does at a head dim it has no kernel for):
# correct, but nothing about the kernels was verified.
NOT_EXERCISED = "kernel not exercised at these sizes"

# Speedups above this are flagged for a person to review (the known cheats produce 10-10000x).
REVIEW_SPEEDUP = 10.0


@dataclass
class CandidateResult:
    name: str
    kind: str
    correct: bool
    verdict: dict[str, Any]  # Verdict.as_dict()
    feedback: str = ""  # the verifier's feedback when not correct
    kernels: dict[str, int] | None = None  # optimize(): kernel -> modules swapped
    rolled_back: list[str] = field(default_factory=list)  # optimize(): "module (kernel)" its checks rolled back
    time: Timing | None = None
    speedup_vs_eager: float | None = None
    speedup_vs_compile: float | None = None
    speedup: float | None = None  # vs the baseline (raw: may be < 1)
    flags: list[str] = field(default_factory=list)  # reasons a person should look at this number
    # optimize(): "module (kernel)" swaps whose kernel did not launch at the sizes run (kept as PyTorch there)
    not_launched: list[str] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        """HARNESS_FAILURE (also: an unchanged model that fails the check), WRONG, NOT_EXERCISED, KERNEL_VERIFIED,
        ROLLED_BACK or NOTHING_SWAPPED. A candidate
        without an optimize() report (a kernel pack, which the verifier requires to launch its kernels) is verified
        when correct. Swapped kernels that launched nowhere in the verification (or, with nothing swapped, swaps
        optimize() kept as PyTorch because their kernel did not launch at these sizes) are not exercised."""
        if (self.verdict or {}).get("harness_error") or (not self.correct and self.ran_unchanged):
            return HARNESS_FAILURE
        if not self.correct:
            return WRONG
        if (self.kernels and self.verdict.get("launches", None) == 0) or (not self.kernels and self.not_launched):
            return NOT_EXERCISED
        if self.kernels is None or self.kernels:
            return KERNEL_VERIFIED
        return ROLLED_BACK if self.rolled_back else NOTHING_SWAPPED

    @property
    def ran_unchanged(self) -> bool:
        """optimize() swapped nothing and no kernel launched: the model ran as PyTorch runs it. Such a candidate
        failing the check is the verifier's limit at these sizes (PyTorch's own rounding beyond its allowance:
        level3/35_LSTM at its held-out sizes), never a wrong kernel. (A compile candidate that launched nothing still
        ran the backend's rewritten graph: its failures stand, flagged when plain torch.compile fails too.)"""
        return self.kind == "optimize" and self.kernels == {} and not self.rolled_back and \
            (self.verdict or {}).get("launches", None) == 0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CandidateResult":
        """The inverse of as_dict (a report read back to resume a run)."""
        return cls(d["name"], d["kind"], d["correct"], d["verdict"], d.get("feedback", ""), d.get("kernels"),
                   d.get("rolled_back", []), _timing(d.get("time")), d.get("speedup_vs_eager"),
                   d.get("speedup_vs_compile"), d.get("speedup"), d.get("flags", []), d.get("not_launched", []))

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "correct": self.correct, "feedback": self.feedback,
                "kernels": self.kernels, "outcome": self.outcome,
                "rolled_back": self.rolled_back, "not_launched": self.not_launched, "time": self.time.as_dict() if self.time else None,
                "speedup_vs_eager": self.speedup_vs_eager, "speedup_vs_compile": self.speedup_vs_compile,
                "speedup": self.speedup, "flags": self.flags,
                "verdict": self.verdict}


@dataclass
class ProblemResult:
    name: str
    level: int | None
    path: str | None
    status: str  # OK, SKIPPED or ERROR
    reason: str = ""  # why skipped, or the error
    sizes: dict[str, int] = field(default_factory=dict)  # every size constant, as run
    scaled: dict[str, int] = field(default_factory=dict)  # the constants changed from the file's values
    file_sizes: dict[str, int] = field(default_factory=dict)  # the file's own values
    size_note: str = ""  # why the sizes run differ from the scaling rule's (the reference failed there)
    eager: Timing | None = None
    compile: Timing | None = None
    compile_note: str = ""  # why torch.compile is not part of the baseline
    timing_note: str = ""  # why nothing was timed
    candidates: list[CandidateResult] = field(default_factory=list)
    seconds: float = 0.0  # the harness's own time on this problem

    @property
    def baseline(self) -> Timing | None:
        times = [t for t in (self.eager, self.compile) if t is not None]
        return min(times, key=lambda t: t.median_ms) if times else None

    @property
    def baseline_name(self) -> str | None:
        if self.baseline is None:
            return None
        return "compile" if self.compile is not None and self.baseline is self.compile else "eager"

    @property
    def timed(self) -> bool:
        return self.baseline is not None

    def effective_speedup(self, candidate: CandidateResult) -> float | None:
        """The speedup with the baseline as fallback: 1.0 for a wrong or slower candidate (or one that could not be
        timed); None when this problem's baseline was not timed, or the candidate left the model unchanged (its
        ratio to the baseline would be noise)."""
        if not self.timed or candidate.outcome in (NOTHING_SWAPPED, ROLLED_BACK, NOT_EXERCISED, HARNESS_FAILURE):
            return None
        if not candidate.correct or candidate.speedup is None:
            return 1.0
        return max(1.0, candidate.speedup)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ProblemResult":
        """The inverse of as_dict (a report read back to resume a run)."""
        baseline = d.get("baseline") or {}
        return cls(d["name"], d.get("level"), d.get("path"), d["status"], d.get("reason", ""), d.get("sizes", {}),
                   d.get("scaled", {}), d.get("file_sizes", {}), d.get("size_note", ""), _timing(baseline.get("eager")),
                   _timing(baseline.get("compile")), baseline.get("compile_note", ""),
                   baseline.get("timing_note", ""), [CandidateResult.from_dict(c) for c in d.get("candidates", [])],
                   d.get("seconds", 0.0))

    @property
    def key(self) -> str:
        """What identifies the problem across runs: its file, or its name when it has none."""
        return self.path or self.name

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "level": self.level, "path": self.path, "status": self.status,
                "reason": self.reason, "sizes": self.sizes, "scaled": self.scaled,
                "file_sizes": self.file_sizes, "size_note": self.size_note,
                "baseline": {"eager": self.eager.as_dict() if self.eager else None,
                             "compile": self.compile.as_dict() if self.compile else None,
                             "used": self.baseline_name, "compile_note": self.compile_note,
                             "timing_note": self.timing_note},
                "candidates": [{**c.as_dict(), "effective_speedup": self.effective_speedup(c)}
                               for c in self.candidates],
                "seconds": self.seconds}


SCHEMA = "mpskernels-bench/1"


def _timing(d: dict[str, Any] | None) -> Timing | None:
    if not d:
        return None
    return Timing(*(d[k] for k in ("median_ms", "q1_ms", "q3_ms", "min_ms", "max_ms", "runs")))


@dataclass
class BenchReport:
    machine: dict[str, Any]  # Machine.as_dict()
    options: dict[str, Any]  # how it ran: verification, timing, scaling budget
    problems: list[ProblemResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # things about the whole run (a pack matching no problem)
    started: str = ""  # UTC, ISO 8601
    seconds: float = 0.0
    complete: bool = False  # every problem done; a report written while running (or by a killed run) says False

    def count(self, status: str) -> int:
        return sum(1 for r in self.problems if r.status == status)

    @property
    def timed(self) -> bool:
        return any(r.timed for r in self.problems)

    def as_dict(self) -> dict[str, Any]:
        from .summary import summarize

        return {"schema": SCHEMA, "complete": self.complete, "started": self.started, "seconds": self.seconds,
                "machine": self.machine,
                "options": self.options, "notes": self.notes,
                "counts": {s: self.count(s) for s in (OK, SKIPPED, ERROR)},
                "summary": [s.as_dict() for s in summarize(self.problems)],
                "problems": [r.as_dict() for r in self.problems]}
