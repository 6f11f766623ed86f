"""Issue 17 item 8: results are written as they come, a problem has a time limit, and a second run resumes from
the report of a killed first run."""

from __future__ import annotations

import json

import pytest

from mpskernels.bench import BenchOptions, environment, optimize_candidate, run_bench
from mpskernels.bench import runner
from mpskernels.bench.results import OK, SKIPPED
from mpskernels.cli import main
from mpskernels.problem import parse_problem

from .test_kernelbench_shapes import RELU

HANGS = RELU.replace("return torch.relu(x)", "import time\n        time.sleep(60)\n        return torch.relu(x)")
# A Ctrl-C or a kill while this problem runs: the run itself ends there.
KILLS_THE_RUN = RELU.replace("return torch.relu(x)", "raise KeyboardInterrupt")


def test_a_problem_past_its_time_limit_is_stopped_and_the_run_goes_on():
    options = BenchOptions(seeds=(0,), distributions=("as-given",), held_out=False, time_limit=3.0)
    problems = [parse_problem(HANGS, name="hangs"), parse_problem(RELU, name="relu")]
    report = run_bench(problems, [optimize_candidate()], environment("cpu", 4096), options)
    hung, fine = report.problems
    assert hung.status == SKIPPED and hung.reason.startswith("time limit: not finished within 3 s")
    assert "reference on cpu" in hung.reason and hung.seconds < 10
    assert fine.status == OK and fine.candidates[0].correct


def test_a_killed_run_leaves_its_report_and_a_second_run_resumes(tmp_path, capsys, monkeypatch):
    level = tmp_path / "level1"
    level.mkdir()
    (level / "1_relu.py").write_text(RELU)
    (level / "2_killed.py").write_text(KILLS_THE_RUN)
    (level / "3_relu.py").write_text(RELU)
    out = tmp_path / "out"
    argv = ["bench", str(level), "--quick", "-q", "--no-plot", "--out", str(out)]
    with pytest.raises(KeyboardInterrupt):
        main(argv)
    data = json.loads((out / "report.json").read_text())
    assert data["complete"] is False and [p["name"] for p in data["problems"]] == ["1_relu"]
    first_seconds = data["problems"][0]["seconds"]

    (level / "2_killed.py").write_text(RELU)  # whatever killed it is gone
    ran = []
    real = runner.run_problem
    monkeypatch.setattr(runner, "run_problem", lambda problem, *a, **k: ran.append(problem.name) or real(problem, *a, **k))
    assert main([*argv, "--resume"]) == 0, capsys.readouterr().err
    assert ran == ["2_killed", "3_relu"]  # the first problem's result was reused
    data = json.loads((out / "report.json").read_text())
    assert data["complete"] is True
    assert [(p["name"], p["status"]) for p in data["problems"]] == [("1_relu", OK), ("2_killed", OK), ("3_relu", OK)]
    assert data["problems"][0]["seconds"] == first_seconds

    capsys.readouterr()
    assert main([*argv, "--resume", "--max-elements", "1024"]) == 2  # other options: its verdicts would not be this run's
    assert "was made with other options (max_elements)" in capsys.readouterr().err
