"""benches/lane_compare.py: our times across anchor-lane runs, case by case (an A/B of kernel variants)."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benches"))
import lane_compare  # noqa: E402


def run(gbps, **times):
    """A run's JSON as anchor_lane.py writes it, reduced to what the comparison reads; None: ours was wrong."""
    rows = [{"family": "rms_norm", "dtype": "bfloat16", "case": case, "ours_us": us,
             "ours_status": "ok" if us is not None else "wrong"} for case, us in times.items()]
    return {"machine": {}, "copy_gbps": gbps, "rows": rows, "not_run": []}


def test_ratios_per_case_and_their_geomean():
    base = run(3000.0, a=40.0, b=10.0, c=5.0)
    variant = run(3010.0, a=20.0, b=10.0, c=None)
    lines = lane_compare.compare([base, variant], ["A", "B"])
    assert "| rms_norm | bfloat16 | a | 40.0 | 20.0 | 2.00 |" in lines
    assert "| rms_norm | bfloat16 | b | 10.0 | 10.0 | 1.00 |" in lines
    assert "| rms_norm | bfloat16 | c | 5.0 | — | — |" in lines  # the variant's result was wrong: no ratio
    assert "A / B: geomean 1.414 over 2 cases" in lines
    assert not any(line.startswith("warning") for line in lines)


def test_runs_on_different_machine_states_are_flagged():
    lines = lane_compare.compare([run(3000.0, a=1.0), run(2800.0, a=1.0)], ["A", "B"])
    assert any(line.startswith("warning: B's copy bandwidth differs") for line in lines)


def test_family_filter_and_the_command_line(tmp_path, capsys, monkeypatch):
    base, variant = tmp_path / "base.json", tmp_path / "variant.json"
    base.write_text(json.dumps(run(3000.0, a=4.0)))
    variant.write_text(json.dumps(run(3000.0, a=2.0)))
    assert lane_compare.compare([run(3000.0, a=4.0), run(3000.0, a=2.0)], ["A", "B"], {"softmax"})[-2] == \
        "A / B: no case in common"
    monkeypatch.setattr(sys, "argv", ["lane_compare.py", str(base), str(variant)])
    assert lane_compare.main() == 0
    assert "base / variant: geomean 2.000 over 1 cases" in capsys.readouterr().out
    monkeypatch.setattr(sys, "argv", ["lane_compare.py", str(base)])
    with pytest.raises(SystemExit):
        lane_compare.main()
