"""The summary math: geomean, median, fast_p, with the baseline as the fallback of wrong or slower candidates."""

from __future__ import annotations

import math

import pytest

from mpskernels.bench.summary import BEST, fast_p, geomean, summarize

from .fakes import candidate, problem, timed_report, untimed_report


def test_geomean_and_fast_p():
    assert geomean([2.0, 8.0]) == pytest.approx(4.0)
    assert geomean([1.5]) == pytest.approx(1.5)
    with pytest.raises(ValueError):
        geomean([])
    with pytest.raises(ValueError):
        geomean([1.0, 0.0])
    assert fast_p([1.0, 1.0, 2.0, 3.0], 1.0) == 0.5  # strictly above p: a fallback (1.0) is never fast
    assert fast_p([1.0, 1.5, 2.0], 1.5) == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        fast_p([], 1.0)


def test_wrong_and_slower_candidates_count_as_the_baseline():
    (s,) = summarize(timed_report().problems)
    # effective speedups: a 2.0, b 1.25, c 1.0 (0.5x falls back), d 1.0 (wrong falls back); e skipped
    assert (s.problems, s.correct, s.timed) == (4, 3, 4)
    assert s.correct_rate == pytest.approx(0.75)
    assert s.geomean == pytest.approx(math.prod([2.0, 1.25, 1.0, 1.0]) ** 0.25)
    assert s.median == pytest.approx(1.125)
    assert s.fast_p == {1.0: 0.5, 1.5: 0.25, 2.0: 0.0}  # 2.0 is not above 2.0
    assert s.review == 0


def test_untimed_runs_have_no_speedup_statistics():
    (s,) = summarize(untimed_report().problems)
    assert (s.problems, s.correct, s.timed) == (2, 1, 0)
    assert s.geomean is None and s.median is None
    assert all(v is None for v in s.fast_p.values())


def test_best_of_several_groups_and_review_flag():
    problems = [
        problem("a", candidate(time_ms=2.0, baseline_ms=2.0),
                candidate("pack:a", "pack", time_ms=0.1, baseline_ms=2.0), eager_ms=2.0),
        problem("b", candidate(time_ms=1.0, baseline_ms=3.0), candidate("pack:b", "pack", correct=False),
                eager_ms=3.0),
        problem("c", candidate(time_ms=1.0, baseline_ms=1.5), eager_ms=1.5),
    ]
    by_group = {s.group: s for s in summarize(problems)}
    assert set(by_group) == {"optimize", "pack", BEST}
    packs, best = by_group["pack"], by_group[BEST]
    assert (packs.problems, packs.correct) == (2, 1)  # packs apply only to their own problems
    assert packs.review == 1  # 20x
    assert packs.geomean == pytest.approx(math.sqrt(20.0 * 1.0))
    assert best.problems == 3 and best.correct == 3
    assert best.geomean == pytest.approx((20.0 * 3.0 * 1.5) ** (1 / 3))  # the fastest correct candidate each
