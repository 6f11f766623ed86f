"""`mpskernels selftest` on Linux (the emulator: correctness only), and its Mac-only parts with fakes: model-sized
cases the kernels take, timing against PyTorch's op with a fake clock, the report files."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from mpskernels import registry
from mpskernels.cli import main
from mpskernels.kernels import FAMILIES
from mpskernels.runtime import use_backend
from mpskernels.selftest import CaseResult, SelftestReport, check_case, model_cases, run_selftest, time_case
from mpskernels.selftest_report import markdown, write_all

SILU = next(f for f in FAMILIES if f.name == "silu")


def test_selftest_on_the_emulator_checks_every_case_and_says_nothing_was_timed(tmp_path):
    report = run_selftest(["silu", "rms_norm"], [torch.float32], run_optimize=False)
    assert report.backend == "emulator" and "correctness only" in report.mode
    assert {c.family for c in report.cases} == {"silu", "rms_norm"} and all(c.ok for c in report.cases)
    assert all(c.launches > 0 and c.ours_ms is None for c in report.cases)
    written = write_all(report, tmp_path)
    assert [p.name for p in written] == ["selftest.json", "selftest.md"]  # nothing timed: no speedup plot
    data = json.loads((tmp_path / "selftest.json").read_text())
    assert len(data["cases"]) == len(report.cases) and "torch" in data["machine"]


def test_a_wrong_result_is_a_failure_with_the_comparison_in_full():
    wrong = dataclasses.replace(SILU, reference=lambda x: torch.nn.functional.silu(x) * 1.01)
    with use_backend("emulator"):
        result = check_case(wrong, torch.float32, "example", (torch.linspace(-4, 4, 64),))
    assert not result.ok and "MISMATCH" in result.detail


def test_a_case_that_ran_the_reference_is_a_failure():
    with use_backend("reference"):
        result = check_case(SILU, torch.float32, "example", (torch.linspace(-4, 4, 64),))
    assert not result.ok and result.launches == 0 and "no kernel was launched" in result.detail


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_model_sized_cases_are_ones_the_kernel_takes(family):
    """On a Mac these run and are timed: each must reach the kernel, not the reference fallback."""
    cases = model_cases(family, torch.float16, "cpu")
    assert cases, f"{family.name} has no model-sized case"
    runner = registry.RUNNERS[family.name]
    for label, args in cases:
        inputs = dict(zip(runner.names, runner.fill_defaults(args, {})))
        registry.validate(family, inputs)
        assert registry.unsupported_reason(family, inputs) is None, label


def test_timing_against_pytorch_and_the_speedup_plot(tmp_path):
    ticks = iter(range(10**6))
    result = CaseResult("silu", "float32", "decode x 1x64", True, "ok", launches=1)
    with use_backend("reference"):
        time_case(result, SILU, (torch.randn(1, 64),), synchronize=lambda: None, clock=lambda: next(ticks) * 1e-3)
    assert result.ours_ms > 0 and result.torch_ms > 0 and result.baseline == "native op"
    report = SelftestReport({"torch": torch.__version__}, "metal", "correctness and speed on the GPU", [result],
                            {"ok": True, "result": "1 swapped"})
    assert "## Speed against PyTorch" in markdown(report) and report.ok
    names = [p.name for p in write_all(report, tmp_path)]
    assert names == ["selftest.json", "selftest.md", "selftest.png"]


def test_failures_fail_the_report_and_are_printed_in_full():
    bad = CaseResult("rms_norm", "bfloat16", "example 3", False, "Traceback ...\nValueError: boom")
    report = SelftestReport({}, "metal", "m", [bad], {"ok": True, "result": "r"})
    assert not report.ok and "ValueError: boom" in markdown(report)


def test_cli_names_unknown_families(capsys):
    assert main(["selftest", "--families", "silu,rmsnorm", "--no-optimize", "--out", "/tmp/unused"]) == 2
    assert "rmsnorm" in capsys.readouterr().err
