"""The harness end to end on the emulator: a slice of the suite through optimize() and kernel packs, skips and
errors, and the timing path with the GPU timer replaced by a fake."""

from __future__ import annotations

import pytest

from mpskernels.bench import BenchOptions, environment, optimize_candidate, pack_candidates, run_bench
from mpskernels.bench import runner
from mpskernels.bench.machine import BenchEnvironment, Machine
from mpskernels.bench.report import markdown
from mpskernels.bench.results import ERROR, OK, SKIPPED
from mpskernels.bench.timing import Timing
from mpskernels.problem import load_problem, load_problems, parse_problem

from .packs import SILU_PROBLEM, SUITE, silu_pack

QUICK = BenchOptions(seeds=(0,), distributions=("as-given", "normal", "large"), held_out=False)
SLICE = [SUITE / "level1" / "01_RMSNorm.py", SUITE / "level2" / "04_Gated_MLP_SwiGLU.py",
         SUITE / "level3" / "01_LLaMA_decoder_layer.py"]


def test_a_slice_of_the_suite_on_the_emulator():
    env = environment("cpu")
    assert env.machine.backend == "emulator" and not env.can_time
    problems = load_problems(SLICE)
    report = run_bench(problems, [optimize_candidate()], env, QUICK)
    assert [r.status for r in report.problems] == [OK, OK, OK], [r.reason for r in report.problems]
    for problem, result in zip(problems, report.problems):
        (c,) = result.candidates
        assert c.correct, c.feedback
        assert c.time is None and c.speedup is None and result.eager is None  # nothing timed, nothing made up
        assert result.timing_note.startswith("unavailable")
        # the sizes run are recorded, within the budget, and differ from the file's where scaled
        assert result.scaled and all(result.sizes[k] == v != problem.constants[k] for k, v in result.scaled.items())
        assert sum(problem.at(result.sizes).meta_sizes()) <= env.max_elements
        assert c.verdict["sizes"] == result.sizes
    kernels = [r.candidates[0].kernels for r in report.problems]
    assert kernels[0] == {"rms_norm": 1}
    assert "swiglu_split" in kernels[1] and {"rms_norm", "swiglu_split"} <= set(kernels[2])  # gate, up: one matmul
    assert report.problems[0].candidates[0].verdict["launches"] > 0  # the kernels ran on the emulator
    text = markdown(report)
    assert "emulator backend" in text and "| optimize() | 3 | 3 (100%) | 0 | 0 | 0 | 0 | 0 | n/a |" in text


def test_packs_apply_to_their_problem_and_a_wrong_one_is_caught(tmp_path):
    silu = load_problem(SILU_PROBLEM)
    other = load_problem(SUITE / "level1" / "12_ReLU.py")
    folders = [silu_pack(tmp_path / "right", silu), silu_pack(tmp_path / "wrong", silu, wrong=True),
               silu_pack(tmp_path / "stale", silu, problem_source=silu.source + "\n# an older version\n"),
               silu_pack(tmp_path / "nameless", silu, problem_name="")]
    candidates = pack_candidates(folders)
    report = run_bench([silu, other], candidates, environment("cpu", 4096), QUICK)
    silu_result, other_result = report.problems
    by_name = {c.name: c for c in silu_result.candidates}
    assert set(by_name) == {"pack:right", "pack:wrong", "pack:stale"}
    assert by_name["pack:right"].correct and by_name["pack:right"].verdict["launches"] > 0
    wrong = by_name["pack:wrong"]
    assert not wrong.correct and "MISMATCH" in wrong.feedback
    assert any("another version of this problem" in f for f in by_name["pack:stale"].flags)
    assert not by_name["pack:right"].flags
    assert other_result.status == OK and other_result.candidates == []  # no pack for ReLU
    assert any("pack:nameless" in n and "names no problem" in n for n in report.notes)


SKELETON = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        {body}


rows = 64
dim = 256


def get_inputs():
    return [torch.randn(rows, dim)]


def get_init_inputs():
    return []
'''


def _problem(name: str, body: str):
    return parse_problem(SKELETON.replace("{body}", body), name=name)


def test_missing_ops_skip_broken_problems_error_and_the_run_goes_on():
    lacking = _problem("lacking", 'raise NotImplementedError("The operator \'aten::foo\' is not currently '
                                  'implemented for the MPS device.")')
    broken = _problem("broken", 'raise ValueError("bad reshape")')
    fine = _problem("fine", "return torch.relu(x)")
    report = run_bench([lacking, broken, fine], [optimize_candidate()], environment("cpu", 4096), QUICK)
    lacking_r, broken_r, fine_r = report.problems
    assert lacking_r.status == SKIPPED and "lacks: The operator 'aten::foo'" in lacking_r.reason
    assert broken_r.status == ERROR and "ValueError: bad reshape" in broken_r.reason
    assert fine_r.status == OK and fine_r.candidates[0].correct
    assert report.count(OK) == 1 and report.count(SKIPPED) == 1 and report.count(ERROR) == 1


def test_a_model_whose_forward_closes_over_its_modules_verifies():
    # KernelBench's minGPT block keeps `self.mlpf = lambda x: m.c_proj(...)`: a deepcopy of such a model still
    # calls the original modules, so the float64 oracle must be built afresh.
    source = SKELETON.replace("super().__init__()", "super().__init__()\n        self.linear = nn.Linear(dim, dim)\n"
                              "        m = self.linear\n        self.f = lambda x: torch.relu(m(x))")
    problem = parse_problem(source.replace("{body}", "return self.f(x)"), name="closure")
    report = run_bench([problem], [optimize_candidate()], environment("cpu", 4096), QUICK)
    (c,) = report.problems[0].candidates
    assert c.correct, c.feedback


def test_a_problem_whose_smallest_sizes_exceed_the_budget_runs_within_a_larger_one(monkeypatch):
    from mpskernels.bench import runner
    from mpskernels.problem import _halving_path

    tiny = _problem("needs_more", "return x + 1")
    smallest = sum(tiny.at(list(_halving_path(tiny))[-1]).meta_sizes())
    budget = smallest // 16  # its smallest sizes need 16x the budget: within BACKOFF_FACTOR (full verification)
    assert budget >= 1 and smallest % 16 == 0
    report = run_bench([tiny], [optimize_candidate()], environment("cpu", max_elements=budget), QUICK)
    (r,) = report.problems
    assert r.status == OK and r.candidates[0].correct
    assert r.size_note == f"its smallest sizes need more than the budget of {budget:,} elements: ran within " \
        f"{16 * budget:,}"
    assert "verified quick" not in r.size_note
    monkeypatch.setattr(runner, "BACKOFF_FACTOR", 4)  # 16x the budget is beyond it: runs, verified quick
    report = run_bench([tiny], [optimize_candidate()], environment("cpu", max_elements=budget), BenchOptions())
    (r,) = report.problems
    assert r.status == OK and r.candidates[0].correct and "verified quick (one seed" in r.size_note
    full = run_bench([tiny], [optimize_candidate()], environment("cpu", max_elements=16 * budget), BenchOptions())
    assert r.candidates[0].verdict["comparisons"] < full.problems[0].candidates[0].verdict["comparisons"]
    monkeypatch.setattr(runner, "OVERSIZE_FACTOR", 4)  # 16x the budget is beyond how far it may go: skipped
    report = run_bench([tiny], [optimize_candidate()], environment("cpu", max_elements=budget), QUICK)
    (r,) = report.problems
    assert r.status == SKIPPED and r.reason.startswith("does not fit the size budget")
    assert f"budget of {4 * budget}" in r.reason


def _timed_env() -> BenchEnvironment:
    """An environment that claims an M4 Max GPU timer while running on the CPU: only for driving the timing path
    with a fake timer (the harness itself never times without MPS)."""
    real = environment("cpu")
    machine = Machine(**{**real.machine.as_dict(), "chip": "Apple M4 Max", "timing": "mps"})
    return BenchEnvironment(machine, real.max_elements)


def test_timed_path_speedups_fallback_and_flags(tmp_path, monkeypatch):
    silu = load_problem(SILU_PROBLEM)
    candidates = [optimize_candidate(), *pack_candidates([silu_pack(tmp_path / "right", silu),
                                                         silu_pack(tmp_path / "wrong", silu, wrong=True)])]
    fake_ms = {"eager": 2.0, "optimize": 4.0, "pack:right": 1e-4}
    timed = []

    def fake_timer(variants, synchronize, options, clock=None):
        for call in variants.values():
            call()  # every variant must actually run
        timed.append(sorted(variants))
        return {name: Timing(fake_ms[name], fake_ms[name], fake_ms[name], fake_ms[name], fake_ms[name], 10)
                for name in variants}

    monkeypatch.setattr(runner, "time_interleaved", fake_timer)
    options = BenchOptions(seeds=(0,), distributions=("as-given",), held_out=False, compile=False)
    report = run_bench([silu], candidates, _timed_env(), options)
    (r,) = report.problems
    assert timed == [["eager", "optimize", "pack:right"]]  # the wrong pack is not timed: it falls back
    assert r.compile is None and "--no-compile" in r.compile_note and r.baseline_name == "eager"
    c = {c.name: c for c in r.candidates}
    assert c["optimize"].speedup == pytest.approx(0.5) and r.effective_speedup(c["optimize"]) == 1.0
    assert c["pack:wrong"].speedup is None and r.effective_speedup(c["pack:wrong"]) == 1.0
    fast = c["pack:right"]
    assert fast.speedup == pytest.approx(2e4) and fast.speedup_vs_eager == pytest.approx(2e4)
    assert any("review" in f for f in fast.flags)
    assert any("faster than memory bandwidth allows" in f for f in fast.flags)
    assert not any("bandwidth" in f for f in c["optimize"].flags)


def test_timing_flags():
    slow = Timing(10.0, 9.0, 11.0, 9.0, 12.0, 10)
    assert runner.timing_flags(1.2, slow, 10**6, 546) == []
    noisy = Timing(10.0, 5.0, 15.0, 4.0, 20.0, 10)
    assert runner.timing_flags(1.2, noisy, 10**6, 546) == ["noisy: interquartile range 100% of the median"]
    fast = Timing(0.001, 0.001, 0.001, 0.001, 0.001, 10)
    flags = runner.timing_flags(11.0, fast, 10**9, 546)  # 1 GB in 1 us
    assert len(flags) == 2 and "above 10x" in flags[0] and "at least 1.83 ms at 546 GB/s" in flags[1]
    assert runner.timing_flags(11.0, fast, 10**9, None)[1:] == []  # unknown chip: no roofline check


def test_a_timing_failure_keeps_the_verdicts(monkeypatch):
    def broken_timer(variants, synchronize, options, clock=None):
        raise RuntimeError("MPS backend out of memory")

    monkeypatch.setattr(runner, "time_interleaved", broken_timer)
    options = BenchOptions(seeds=(0,), distributions=("as-given",), held_out=False, compile=False)
    report = run_bench([load_problem(SILU_PROBLEM)], [optimize_candidate()], _timed_env(), options)
    (r,) = report.problems
    assert r.status == OK and r.candidates[0].correct
    assert r.timing_note == "timing failed: RuntimeError: MPS backend out of memory"
    assert not r.timed and r.candidates[0].speedup is None
