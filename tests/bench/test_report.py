"""The report writers: the JSON schema, the Markdown tables, the PNG."""

from __future__ import annotations

import json

import pytest

from mpskernels.bench.report import markdown, write_json, write_markdown, write_png
from mpskernels.bench.results import SCHEMA

from .fakes import timed_report, untimed_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_json_schema(tmp_path):
    data = json.loads(write_json(timed_report(), tmp_path / "r.json").read_text())
    assert data["schema"] == SCHEMA
    assert {"started", "seconds", "machine", "options", "notes", "counts", "summary", "problems"} <= set(data)
    assert data["machine"]["chip"] == "Apple M4 Max" and data["machine"]["backend"] == "metal"
    assert data["counts"] == {"ok": 4, "skipped": 1, "error": 0}
    (summary,) = data["summary"]
    assert summary["fast_p"] == {"1.0": 0.5, "1.5": 0.25, "2.0": 0.0}
    a = data["problems"][0]
    assert a["sizes"] == {"batch_size": 16, "dim": 512} and a["scaled"] == {"dim": 512}
    assert a["file_sizes"]["dim"] == 65536
    assert a["baseline"]["used"] == "eager" and a["baseline"]["eager"]["median_ms"] == 2.0
    (cand,) = a["candidates"]
    assert cand["speedup"] == 2.0 and cand["effective_speedup"] == 2.0 and cand["time"]["median_ms"] == 1.0
    slower = data["problems"][2]["candidates"][0]
    assert slower["speedup"] == 0.5 and slower["effective_speedup"] == 1.0  # falls back to the baseline
    wrong = data["problems"][3]["candidates"][0]
    assert wrong["correct"] is False and wrong["time"] is None and wrong["effective_speedup"] == 1.0
    assert data["problems"][4]["status"] == "skipped" and "aten::foo" in data["problems"][4]["reason"]


def test_json_of_an_untimed_run_has_no_times(tmp_path):
    data = json.loads(write_json(untimed_report(), tmp_path / "r.json").read_text())
    assert data["machine"]["timing"].startswith("unavailable")
    assert data["summary"][0]["geomean_speedup"] is None
    for p in data["problems"]:
        assert p["baseline"]["eager"] is None and p["baseline"]["used"] is None
        for c in p["candidates"]:
            assert c["time"] is None and c["speedup"] is None and c["effective_speedup"] is None


def test_json_stays_strict_with_non_finite_errors(tmp_path):
    report = untimed_report()
    report.problems[1].candidates[0].verdict["max_abs"] = float("nan")
    report.problems[1].candidates[0].verdict["max_rel"] = float("inf")
    data = json.loads(write_json(report, tmp_path / "r.json").read_text())
    verdict = data["problems"][1]["candidates"][0]["verdict"]
    assert (verdict["max_abs"], verdict["max_rel"]) == ("nan", "inf")


def _rows(text: str, section: str) -> list[list[str]]:
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in body.splitlines() if line.startswith("|")]
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in lines[2:]]


def test_markdown_tables():
    text = markdown(timed_report())
    assert "Apple M4 Max" in text and "PyTorch 2.13.0" in text and "metal backend" in text
    (summary,) = _rows(text, "Summary")
    # problems, kernel verified, not exercised, nothing swapped, rolled back, wrong, harness failure, geomean, median
    assert summary[:10] == ["optimize()", "4", "3 (75%)", "0", "0", "0", "1", "0", "1.26x", "1.12x"]
    assert summary[10:13] == ["50%", "25%", "0%"]
    problems = _rows(text, "Problems")
    assert [r[0] for r in problems] == ["a", "b", "c", "d"]
    a = problems[0]
    assert a[2] == "batch_size=16, dim=512 (file: 65536)"
    assert a[3] == "eager 2, compile 3" and a[5] == "yes" and a[7] == "2.00x"
    d = problems[3]
    assert d[5] == "**NO**" and d[6] == "n/a" and "falls back to the baseline" in d[10]
    skipped = _rows(text, "Skipped and failed problems")
    assert skipped == [["e", "3", "skipped", "the reference uses an op that mps lacks: aten::foo"]]


def test_markdown_without_timing_says_na_and_why():
    text = markdown(untimed_report())
    assert "Timing: unavailable: no Apple GPU" in text
    (summary,) = _rows(text, "Summary")
    assert summary[2:8] == ["1 (50%)", "0", "0", "0", "1", "0"] and summary[8:13] == ["n/a"] * 5
    assert "nothing was timed on this machine" in text
    for row in _rows(text, "Problems"):
        assert row[3] == row[6] == row[7] == "n/a"
    assert " ms" not in text.split("## Problems", 1)[1]


def test_markdown_escapes_pipes(tmp_path):
    report = untimed_report()
    report.problems[1].candidates[0].feedback = "FAIL shape | dtype"
    path = write_markdown(report, tmp_path / "r.md")
    assert "FAIL shape \\| dtype" in path.read_text()


@pytest.mark.parametrize("make", [timed_report, untimed_report])
def test_png_written(tmp_path, make):
    path = write_png(make(), tmp_path / "speedups.png")
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5000


def test_markdown_by_level_counts_runs_skips_and_outcomes():
    rows = _rows(markdown(timed_report()), "By level")
    # level, problems, ran, skipped (by reason), candidates, verified, not exercised, nothing swapped, rolled back,
    # wrong, harness failure
    assert rows == [
        ["1", "2", "2", "0", "optimize()", "2", "0", "0", "0", "0", "0"],
        ["2", "1", "1", "0", "optimize()", "1", "0", "0", "0", "0", "0"],
        ["3", "2", "1", "1 skipped: the reference uses an op that mps lacks", "optimize()", "0", "0", "0", "0", "1",
         "0"]]
