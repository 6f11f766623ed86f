"""What a verification found: one `Check` per thing checked, gathered into a `Verdict`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Check:
    name: str  # what was checked, e.g. "outputs match (seed 1, large)"
    passed: bool
    detail: str = ""  # for a failure: what was wrong, specific enough to act on (indices, errors, sizes)

    def __str__(self) -> str:
        return f"{'ok  ' if self.passed else 'FAIL'} {self.name}" + (f": {self.detail}" if self.detail else "")


@dataclass
class Verdict:
    """The outcome of verifying one candidate against one problem. `correct` only when every check passed and at
    least one comparison ran."""

    checks: list[Check] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)  # the sizes of the main run
    max_abs: float = 0.0  # the largest errors over every comparison that ran
    max_rel: float = 0.0
    comparisons: int = 0
    launches: int = 0  # kernel launches made by the candidate over all runs
    skipped: list[str] = field(default_factory=list)  # what could not be checked, and why (not failures)
    # The harness could not judge the candidate (the float64 oracle failed): not the candidate's failure, and not
    # a pass either.
    harness_error: str = ""

    @property
    def correct(self) -> bool:
        return self.comparisons > 0 and not self.harness_error and all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def add(self, name: str, passed: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, passed, detail))
        return passed

    def feedback(self, limit: int = 8) -> str:
        """The failures as text for a person or a model to act on (at most `limit` of them)."""
        if self.harness_error:
            return f"harness failure, the candidate was not judged: {self.harness_error}"
        if self.correct:
            return f"correct: {self.comparisons} comparisons, max abs error {self.max_abs:.3g}, max rel {self.max_rel:.3g}"
        if not self.failures:
            return "nothing was compared: " + ("; ".join(self.skipped) or "no case ran")
        lines = [str(c) for c in self.failures[:limit]]
        if len(self.failures) > limit:
            lines.append(f"... and {len(self.failures) - limit} more failed check(s)")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "correct": self.correct,
            "sizes": self.sizes,
            "max_abs": self.max_abs,
            "max_rel": self.max_rel,
            "comparisons": self.comparisons,
            "launches": self.launches,
            "failures": [{"check": c.name, "detail": c.detail} for c in self.failures],
            "skipped": self.skipped,
            "harness_error": self.harness_error,
        }
