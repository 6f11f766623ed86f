"""Issue 17 item 9: a model optimize() left as PyTorch is reported as such and never counts as a speedup."""

from __future__ import annotations

import pytest

from mpskernels.bench import environment, optimize_candidate, run_bench
from mpskernels.bench.report import markdown
from mpskernels.bench.results import (HARNESS_FAILURE, KERNEL_VERIFIED, NOTHING_SWAPPED, ROLLED_BACK, WRONG,
                                      BenchReport)
from mpskernels.bench.summary import summarize
from mpskernels.problem import parse_problem

from .fakes import MACHINE, candidate, problem
from .test_kernelbench_shapes import QUICK, RELU


def test_outcomes_are_reported_apart_and_unchanged_models_never_count_as_speedups():
    verified = candidate(time_ms=1.0, baseline_ms=2.0, kernels={"rms_norm": 1})
    # on a Mac an unchanged model times at about the baseline: noise such as 1.03x must not count as fast
    unchanged = candidate(time_ms=0.97, baseline_ms=1.0, kernels={})
    rolled = candidate(time_ms=0.9, baseline_ms=1.0, kernels={}, rolled_back=["norm (group_norm)"])
    wrong = candidate(correct=False, kernels={"softmax": 1})
    assert [c.outcome for c in (verified, unchanged, rolled, wrong)] == [KERNEL_VERIFIED, NOTHING_SWAPPED,
                                                                         ROLLED_BACK, WRONG]
    problems = [problem("a", verified, eager_ms=2.0), problem("b", unchanged, eager_ms=1.0),
                problem("c", rolled, eager_ms=1.0), problem("d", wrong, eager_ms=1.0)]
    (s,) = summarize(problems)
    assert (s.problems, s.correct, s.nothing_swapped, s.rolled_back, s.wrong) == (4, 1, 1, 1, 1)
    assert s.timed == 2  # a (2x) and d (wrong: falls back to 1.0); b and c are not speedups of anything
    assert s.geomean == pytest.approx(2.0 ** 0.5) and s.fast_p[1.0] == 0.5
    text = markdown(BenchReport(MACHINE, {"max_elements": 1000}, problems))
    assert "| optimize() | 4 | 1 (25%) | 0 | 1 | 1 | 1 | 0 |" in text  # not exercised 0, harness failure 0
    assert "rolled back norm (group_norm)" in text


def test_a_run_where_optimize_swaps_nothing_says_nothing_swapped():
    relu = parse_problem(RELU, name="relu")  # optimize() has no kernel for ReLU
    report = run_bench([relu], [optimize_candidate()], environment("cpu", 4096), QUICK)
    (c,) = report.problems[0].candidates
    assert c.correct and c.kernels == {} and c.outcome == NOTHING_SWAPPED
    (s,) = summarize(report.problems)
    assert (s.correct, s.nothing_swapped) == (0, 1)
    assert report.as_dict()["summary"][0]["nothing_swapped"] == 1


def test_an_unchanged_model_that_fails_the_check_is_the_harness_not_a_wrong_kernel():
    # level3/35_LSTM: nothing swapped, nothing launched, and PyTorch's own output misses the float64 oracle at a
    # held-out size: not a verdict on any kernel
    unchanged = candidate(correct=False, kernels={})
    unchanged.verdict["launches"] = 0
    launched = candidate(correct=False, kernels={"layer_norm": 1})
    launched.verdict["launches"] = 4
    assert (unchanged.outcome, launched.outcome) == (HARNESS_FAILURE, WRONG)
    (s,) = summarize([problem("a", unchanged), problem("b", launched)])
    assert (s.harness_failure, s.wrong) == (1, 1)
