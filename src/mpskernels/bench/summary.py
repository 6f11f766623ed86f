"""The summary statistics: what the candidates amounted to, geomean and median speedup, fast_p.

Per problem a group of candidates (optimize, the kernel packs, or all of them: "best", the supervisor that keeps
the fastest correct candidate) has one outcome, the first of: a kernel verified (`correct`), a wrong candidate,
swaps all rolled back, nothing swapped. Its speedup is the largest effective speedup among its candidates that
changed the model: the baseline is the fallback, so a wrong or slower candidate counts 1.0. A problem where the
group left the model unchanged (nothing swapped, rolled back) is not counted in the speedups at all: its ratio to
the baseline is noise. fast_p is the share of the group's timed, counted problems whose effective speedup is above p
(strictly: a fallback is never "fast"). Timing-dependent numbers are None ("n/a") when no problem was timed.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Iterable

from .candidates import COMPILE, OPTIMIZE, PACK
from .results import (HARNESS_FAILURE, KERNEL_VERIFIED, NOT_EXERCISED, NOTHING_SWAPPED, OK, REVIEW_SPEEDUP,
                      ROLLED_BACK, WRONG, ProblemResult)

FAST_P = (1.0, 1.5, 2.0)
BEST = "best"
GROUPS = {OPTIMIZE: "optimize()", PACK: "kernel packs", COMPILE: "torch.compile(mpskernels)", BEST: "best of all"}


@dataclass
class Summary:
    group: str  # OPTIMIZE, PACK or BEST
    problems: int = 0  # problems that ran with a candidate of the group
    correct: int = 0  # problems where a kernel of the group was verified
    wrong: int = 0  # problems where the group's candidates were wrong and none verified
    harness_failure: int = 0  # problems where the harness could not judge the group's candidates (not wrong)
    not_exercised: int = 0  # problems where kernels were swapped in but none launched at the sizes run
    rolled_back: int = 0  # problems where optimize()'s checks rolled every swap back: the model ran as PyTorch
    nothing_swapped: int = 0  # problems where the model ran unchanged as PyTorch
    timed: int = 0  # of those, problems with a timed baseline that count toward the speedups
    geomean: float | None = None
    median: float | None = None
    fast_p: dict[float, float | None] = field(default_factory=lambda: {p: None for p in FAST_P})
    review: int = 0  # speedups above REVIEW_SPEEDUP, to be checked by a person

    @property
    def correct_rate(self) -> float | None:
        return self.correct / self.problems if self.problems else None

    def as_dict(self) -> dict[str, Any]:
        return {"group": self.group, "problems": self.problems, "correct": self.correct,
                "kernel_verified": self.correct, "wrong": self.wrong, "rolled_back": self.rolled_back,
                "nothing_swapped": self.nothing_swapped, "harness_failure": self.harness_failure,
                "not_exercised": self.not_exercised,
                "correct_rate": self.correct_rate, "timed": self.timed, "geomean_speedup": self.geomean,
                "median_speedup": self.median, "fast_p": {str(p): v for p, v in self.fast_p.items()},
                "review": self.review}


def geomean(values: Iterable[float]) -> float:
    values = list(values)
    if not values or any(v <= 0 for v in values):
        raise ValueError("the geometric mean needs positive values")
    return math.exp(sum(math.log(v) for v in values) / len(values))


def fast_p(speedups: Iterable[float], p: float) -> float:
    """The share of effective speedups strictly above p."""
    speedups = list(speedups)
    if not speedups:
        raise ValueError("fast_p of no problems")
    return sum(s > p for s in speedups) / len(speedups)


def summarize(problems: list[ProblemResult]) -> list[Summary]:
    """One Summary per candidate group present, plus "best" when there is more than one group."""
    kinds = [k for k in (OPTIMIZE, PACK, COMPILE) if any(c.kind == k for r in problems for c in r.candidates)]
    groups = kinds + ([BEST] if len(kinds) > 1 else [])
    return [_summarize_group(problems, g) for g in groups]


def _summarize_group(problems: list[ProblemResult], group: str) -> Summary:
    summary = Summary(group)
    speedups = []
    for result in problems:
        # torch.compile itself (kind BASELINE) is verified as the baseline, never counted as a candidate
        mine = [c for c in result.candidates if (group == BEST and c.kind in GROUPS) or c.kind == group]
        if result.status != OK or not mine:
            continue
        summary.problems += 1
        outcomes = {c.outcome for c in mine}
        outcome = next(o for o in (KERNEL_VERIFIED, WRONG, HARNESS_FAILURE, NOT_EXERCISED, ROLLED_BACK,
                                   NOTHING_SWAPPED) if o in outcomes)
        summary.correct += outcome == KERNEL_VERIFIED
        summary.wrong += outcome == WRONG
        summary.rolled_back += outcome == ROLLED_BACK
        summary.nothing_swapped += outcome == NOTHING_SWAPPED
        summary.harness_failure += outcome == HARNESS_FAILURE
        summary.not_exercised += outcome == NOT_EXERCISED
        summary.review += sum(1 for c in mine if c.correct and (c.speedup or 0) > REVIEW_SPEEDUP)
        counted = [s for s in (result.effective_speedup(c) for c in mine) if s is not None]
        if result.timed and counted:
            summary.timed += 1
            speedups.append(max(counted))
    if speedups:
        summary.geomean = geomean(speedups)
        summary.median = statistics.median(speedups)
        summary.fast_p = {p: fast_p(speedups, p) for p in FAST_P}
    return summary
