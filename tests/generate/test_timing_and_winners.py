"""The parts of the loop that only run on a Mac, driven here on the CPU: timing a candidate against the baseline,
choosing the fastest correct candidate, flagging suspicious speedups."""

from __future__ import annotations

import json

import mpskernels
from mpskernels.bench.timing import TimingOptions
from mpskernels.generation.loop import REVIEW_SPEEDUP, Attempt, GenerationConfig, _best, _save_pack
from mpskernels.generation.prompt import build_prompt
from mpskernels.generation.worker import time_candidate
from mpskernels.packs import KernelPack, class_key, load_pack, parse_declaration
from mpskernels.problem import parse_problem

from . import replies as r


def test_a_candidate_is_timed_against_eager_with_the_timing_rules(tmp_path):
    problem = parse_problem(r.PROBLEM, name="rms")
    pack = KernelPack("rms", r.KERNEL, parse_declaration(r.DECLARATION),
                      class_key(problem.at().namespace["Model"])).save(tmp_path)
    synchronized = []
    with mpskernels.use_backend("emulator"):
        timing = time_candidate(problem, pack, device="cpu", synchronize=lambda: synchronized.append(1),
                                options=TimingOptions(warmup=1, min_runs=3, max_runs=3, budget_s=0.01),
                                compile_baseline=False)
    assert set(timing) == {"eager_ms", "candidate_ms", "baseline_ms", "speedup"}
    assert timing["baseline_ms"] == timing["eager_ms"] > 0 and timing["candidate_ms"] > 0
    assert timing["speedup"] == timing["eager_ms"] / timing["candidate_ms"]
    assert len(synchronized) >= 3  # synchronised around the timed runs


def attempt(lane, number, speedup=None, stage="ok"):
    timing = None if speedup is None else {"eager_ms": 1.0, "candidate_ms": 1.0 / speedup, "baseline_ms": 1.0,
                                           "speedup": speedup}
    return Attempt(lane, "anthropic", "m", number, stage, "", timing=timing, finished_at=float(lane * 10 + number),
                   candidate=(r.KERNEL, r.DECLARATION), verdict={"correct": stage == "ok"})


def test_timed_the_fastest_correct_candidate_wins_untimed_the_first():
    attempts = [attempt(0, 1, 1.2), attempt(1, 1, 3.0), attempt(1, 2, 9.0, stage="verification"),
                attempt(0, 2, 0.8)]
    assert _best(attempts, timed=True) is attempts[1]
    untimed = [attempt(1, 1), attempt(0, 1), attempt(0, 2, stage="compile")]
    assert _best(untimed, timed=False) is untimed[1]  # finished first
    assert _best([attempt(0, 1, stage="compile")], timed=True) is None


def test_a_speedup_above_ten_is_flagged_for_review_in_the_pack(tmp_path):
    problem = parse_problem(r.PROBLEM, name="rms")
    prompt = build_prompt(problem.source, {})
    pack, flagged = _save_pack(attempt(0, 1, REVIEW_SPEEDUP * 1.5), problem, "m.Model", prompt, {},
                               GenerationConfig(backend="metal"), tmp_path)
    assert flagged and pack.verification["flagged_for_review"] is True
    saved = json.loads((tmp_path / "pack" / "pack.json").read_text())
    assert saved["verification"]["timing"]["speedup"] == REVIEW_SPEEDUP * 1.5
    _, flagged = _save_pack(attempt(0, 1, 2.0), problem, "m.Model", prompt, {}, GenerationConfig(backend="metal"),
                            tmp_path / "ok")
    assert not flagged and load_pack(tmp_path / "ok" / "pack").verification["flagged_for_review"] is False
