"""`mpskernels bench`: exit codes, error messages for bad input, the files it writes."""

from __future__ import annotations

import json

import pytest
import torch

from mpskernels.cli import main

from .packs import SILU_PROBLEM, SUITE, silu_pack

QUICK = ["--quick", "--no-held-out", "-q", "--no-plot"]


def run(capsys, *argv):
    rc = main(["bench", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_a_run_writes_the_reports_and_prints_the_summary(tmp_path, capsys):
    rc, out, err = run(capsys, SUITE / "level1", "-k", "RMSNorm", "--limit", "1", "--quick", "-q",
                       "--out", tmp_path / "out")
    assert rc == 0, err
    # columns: problems, kernel verified, not exercised, nothing swapped, rolled back, wrong, harness failure
    assert "| optimize() | 1 | 1 (100%) | 0 | 0 | 0 | 0 | 0 | n/a |" in out and "Timing: unavailable" in out
    assert "| torch.compile(mpskernels) | 1 |" in out  # the compile backend is a candidate by default
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [p["name"] for p in data["problems"]] == ["01_RMSNorm"]
    assert data["problems"][0]["level"] == 1 and data["machine"]["backend"] == "emulator"
    assert (tmp_path / "out" / "report.md").read_text().startswith("# mpskernels bench")
    assert (tmp_path / "out" / "speedups.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_paths_and_files_exit_2_with_a_message(tmp_path, capsys):
    rc, _, err = run(capsys, tmp_path / "missing")
    assert rc == 2 and f"no problem file or folder at {tmp_path / 'missing'}" in err
    not_a_problem = tmp_path / "helper.py"
    not_a_problem.write_text("x = 1\n")
    rc, _, err = run(capsys, not_a_problem)
    assert rc == 2 and "is not a KernelBench problem: it defines no Model, get_inputs, get_init_inputs" in err
    rc, _, err = run(capsys, tmp_path)  # a folder without problems
    assert rc == 2 and "no KernelBench problems" in err
    rc, _, err = run(capsys, SUITE, "-k", "no such problem")
    assert rc == 2 and "after filtering" in err


def test_bad_options_exit_2(tmp_path, capsys):
    rc, _, err = run(capsys, SILU_PROBLEM, "--pack", tmp_path / "nowhere")
    assert rc == 2 and "--pack" in err and "no such folder" in err
    (tmp_path / "empty").mkdir()
    rc, _, err = run(capsys, SILU_PROBLEM, "--pack", tmp_path / "empty")
    assert rc == 2 and "the pack does not load" in err and "missing pack.json" in err
    rc, _, err = run(capsys, SILU_PROBLEM, "--no-optimize", "--no-compile")  # the compile backend is a candidate too
    assert rc == 2 and "nothing to measure" in err
    rc, _, err = run(capsys, SILU_PROBLEM, "--seeds", "0")
    assert rc == 2 and "--seeds must be at least 1" in err
    with pytest.raises(SystemExit) as e:
        main(["bench", str(SILU_PROBLEM), "--device", "gpu"])
    assert e.value.code == 2


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has an Apple GPU")
def test_asking_for_the_gpu_without_one_exits_2(capsys):
    rc, _, err = run(capsys, SILU_PROBLEM, "--device", "mps")
    assert rc == 2 and "no usable Apple GPU" in err and "--device cpu" in err


def test_strict_exits_1_on_a_wrong_candidate(tmp_path, capsys):
    from mpskernels.problem import load_problem

    wrong = silu_pack(tmp_path / "wrong", load_problem(SILU_PROBLEM), wrong=True)
    right = silu_pack(tmp_path / "right", load_problem(SILU_PROBLEM))
    args = [SILU_PROBLEM, "--no-optimize", "--no-compile", "--max-elements", 2048, "--out", tmp_path / "out", *QUICK]
    rc, out, _ = run(capsys, *args, "--pack", wrong)
    assert rc == 0 and "| kernel packs | 1 | 0 (0%) | 0 | 0 | 0 | 1 | 0 |" in out  # a wrong candidate is a result ...
    rc, _, _ = run(capsys, *args, "--pack", wrong, "--strict")
    assert rc == 1  # ... and a failure under --strict
    rc, _, _ = run(capsys, *args, "--pack", right, "--strict")
    assert rc == 0
