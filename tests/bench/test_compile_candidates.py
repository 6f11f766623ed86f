"""torch.compile in the bench (issue 17 item 10): `torch.compile(backend="mpskernels")` is a candidate, verified
like the others; torch.compile itself is verified too, and is part of the baseline only when correct."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mpskernels.bench import BenchOptions, compile_candidate, environment, run_bench, runner
from mpskernels.bench.candidates import BASELINE, BASELINE_NAME, COMPILE_NAME, Candidate
from mpskernels.bench.machine import BenchEnvironment, Machine
from mpskernels.bench.results import KERNEL_VERIFIED, NOTHING_SWAPPED
from mpskernels.bench.timing import Timing
from mpskernels.problem import load_problem

# RMSNorm written out (LLaMA's form): the mpskernels backend rewrites it to its rms_norm kernel.
RMS_NORM = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        variance = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(variance + 1e-6))


batch_size = 4
dim = 64


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return [dim]
'''

QUICK = dict(seeds=(0,), distributions=("as-given", "normal"), held_out=False, sensitivity=False)


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _problem(tmp_path):
    path = tmp_path / "1_rms_norm_written_out.py"
    path.write_text(RMS_NORM)
    return load_problem(path)


def test_the_mpskernels_backend_is_a_verified_candidate_and_torch_compile_is_verified(tmp_path):
    report = run_bench([_problem(tmp_path)], [compile_candidate()], environment("cpu", 65536),
                       BenchOptions(**QUICK, verify_compile=True))
    (result,) = report.problems
    c = {c.name: c for c in result.candidates}
    backend, baseline = c[COMPILE_NAME], c[BASELINE_NAME]
    assert backend.correct, backend.feedback
    assert backend.verdict["launches"] > 0 and backend.outcome == KERNEL_VERIFIED  # the kernel ran, and passed
    assert baseline.correct and baseline.outcome == NOTHING_SWAPPED and baseline.verdict["comparisons"] > 0
    summary = {s["group"]: s for s in report.as_dict()["summary"]}
    assert set(summary) == {"compile"}  # torch.compile itself is the baseline, never a candidate group
    assert summary["compile"]["kernel_verified"] == 1


def _timed_env() -> BenchEnvironment:
    """Claims an Apple GPU timer while running on the CPU: only to drive the timing path with a fake timer."""
    real = environment("cpu")
    return BenchEnvironment(Machine(**{**real.machine.as_dict(), "chip": "Apple M4 Max", "timing": "mps"}),
                            real.max_elements)


class _OffByOne(nn.Module):
    def __init__(self, reference: nn.Module):
        super().__init__()
        self.reference = reference

    def forward(self, x):
        return self.reference(x) + 1


@pytest.mark.parametrize("compile_is_wrong", [False, True])
def test_the_baseline_is_min_of_eager_and_a_verified_compile(tmp_path, monkeypatch, compile_is_wrong):
    timed = []

    def fake_timer(variants, synchronize, options, clock=None):
        timed.append(sorted(variants))
        return {name: Timing(1.0, 1.0, 1.0, 1.0, 1.0, 10) for name in variants}

    def baseline() -> Candidate:  # torch.compile as it would be if it miscompiled the model
        make = (lambda ref, init: _OffByOne(ref)) if compile_is_wrong else (lambda ref, init: torch.compile(ref))
        return Candidate(BASELINE_NAME, BASELINE, make, require_kernel=False)

    monkeypatch.setattr(runner, "time_interleaved", fake_timer)
    monkeypatch.setattr(runner, "compile_baseline", baseline)
    report = run_bench([_problem(tmp_path)], [], _timed_env(), BenchOptions(**QUICK))
    (result,) = report.problems
    (checked,) = result.candidates
    assert checked.name == BASELINE_NAME and checked.correct != compile_is_wrong
    if compile_is_wrong:
        assert timed == [["eager"]] and result.compile is None and result.baseline_name == "eager"
        assert "failed the verifier" in result.compile_note
    else:
        assert timed == [["compile", "eager"]] and result.compile is not None


@pytest.mark.parametrize("inductor_is_wrong", [False, True], ids=["ours-wrong", "inductor-wrong"])
def test_a_wrong_mpskernels_compile_is_checked_against_plain_torch_compile(tmp_path, monkeypatch,
                                                                          inductor_is_wrong):
    """Where plain torch.compile fails the same check, the compile candidate's verdict says Inductor is the cause
    (KernelBench's level2/11); where plain torch.compile passes, the wrong verdict stands unflagged."""
    def wrong_compile() -> Candidate:
        return Candidate(COMPILE_NAME, "compile", lambda ref, init: _OffByOne(ref), require_kernel=False)

    def baseline() -> Candidate:
        make = (lambda ref, init: _OffByOne(ref)) if inductor_is_wrong else (lambda ref, init: ref)
        return Candidate(BASELINE_NAME, BASELINE, make, require_kernel=False)

    monkeypatch.setattr(runner, "compile_baseline", baseline)
    report = run_bench([_problem(tmp_path)], [wrong_compile()], environment("cpu", 4096), BenchOptions(**QUICK))
    (candidate,) = report.problems[0].candidates
    assert candidate.outcome == "wrong"
    assert (runner.INDUCTOR_WRONG in candidate.flags) == inductor_is_wrong
