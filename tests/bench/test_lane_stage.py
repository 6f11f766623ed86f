"""benches/lane_stage.py: a folder that runs the anchor lane on a GPU machine with no network and another torch."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benches"))
import lane_opcodes  # noqa: E402
import lane_stage  # noqa: E402


@pytest.fixture
def fake_mlx(tmp_path, monkeypatch):
    """MLX's headers as the anchor cache holds them, without downloading the wheel."""
    root = tmp_path / "cache" / "mlx-metal-0.0"
    (root / "mlx").mkdir(parents=True)
    (root / "mlx" / "utils.h").write_text("// mlx\n")
    monkeypatch.setattr(lane_stage, "mlx_include_dir", lambda: root)
    return root


def test_stages_each_commit_the_anchors_sources_and_the_runner(tmp_path, fake_mlx):
    out = tmp_path / "stage"
    lane_stage.main(["--out", str(out), "A=HEAD", "B=HEAD"])
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert (out / "A" / "GIT_SHA").read_text().strip() == head
    for tree in ("A", "B"):  # what anchor_lane.py needs, and nothing else of the repository
        assert (out / tree / "benches" / "anchor_lane.py").is_file()
        assert (out / tree / "metal" / "rows.h").is_file()
        assert (out / tree / "src" / "mpskernels" / "__init__.py").is_file()
        assert not (out / tree / "tests").exists()
    assert any((out / "anchor-src" / "torch" / "ATen" / "native" / "mps" / "kernels").glob("*.h"))
    assert (out / "anchor-src" / "cache" / "mlx-metal-0.0" / "mlx" / "utils.h").is_file()
    assert (out / "pylib" / "platformdirs" / "__init__.py").is_file()
    env_sh = (out / "env.sh").read_text()
    for script in ("run.sh", "env.sh"):
        assert subprocess.run(["bash", "-n", str(out / script)]).returncode == 0
    assert "MPSKERNELS_TORCH_METAL_INCLUDE=$S/anchor-src/torch" in env_sh
    assert "MPSKERNELS_ANCHOR_CACHE=$S/anchor-src/cache" in env_sh
    assert "__TORCH__" not in env_sh and "/env.sh" in (out / "run.sh").read_text()
    # Sourced from another directory, it names the staged folder and exports the anchor sources there.
    shown = subprocess.run(["bash", "-c", f". {out / 'env.sh'} && echo $S && echo $MPSKERNELS_ANCHOR_CACHE"],
                           cwd="/", capture_output=True, text=True, check=True).stdout.split()
    assert shown == [str(out), str(out / "anchor-src" / "cache")]


def test_a_variant_needs_a_name_and_a_revision(tmp_path, fake_mlx, capsys):
    with pytest.raises(SystemExit):
        lane_stage.main(["--out", str(tmp_path / "stage"), "HEAD"])
    assert "expected NAME=REV" in capsys.readouterr().err


FAKE_LANE = """import sys
from pathlib import Path
out = Path(sys.argv[sys.argv.index("--out") + 1])
out.write_text("# table")
out.with_suffix(".json").write_text("{}")
out.with_suffix(".rows.jsonl").write_text("{}")
print("ran with", " ".join(sys.argv[1:]))
"""


@pytest.fixture
def staged_fake_lane(tmp_path, fake_mlx):
    """A staged variant A whose anchor_lane.py is FAKE_LANE, and an empty $OUT: (staged folder, $OUT)."""
    out = tmp_path / "stage"
    lane_stage.main(["--out", str(out), "A=HEAD"])
    (out / "A" / "benches" / "anchor_lane.py").write_text(FAKE_LANE)
    results = tmp_path / "results"
    results.mkdir()
    return out, results


def test_run_sh_leaves_one_json_per_run_and_one_shared_log(tmp_path, staged_fake_lane):
    # A device call returns at most 8 files: each run leaves its JSON only (the Markdown renders from it), and
    # every run's output goes to one log.
    out, results = staged_fake_lane
    for name in ("first", "second"):
        run = subprocess.run(["bash", str(out / "run.sh"), "A", name, "30", "--families", "silu"],
                             env={"OUT": str(results), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
                             capture_output=True, text=True)
        assert run.returncode == 0 and f"{name} rc=0" in run.stdout, run.stdout + run.stderr
    assert sorted(p.name for p in results.iterdir()) == ["first.json", "lane.log", "second.json"]
    log = (results / "lane.log").read_text()
    assert log.count("ran with") == 2 and "== second (A, " in log and "--families silu" in log


FAKE_NCU = """#!/usr/bin/env bash
# Stands in for Nsight Compute: a profiling run runs its program; -i prints a details page or a SASS table.
if [ "$1" = -i ]; then
  case "$*" in
    *"--page details"*) echo "  Registers Per Thread    register/thread    64" ;;
    *"--page source"*) printf '%s\\n' '"Kernel Name","mtl_entry_2_layer_norm_float16"' \\
        '@HEADER@' \\
        '"0x7f00","FFMA R1, R2, R3, R4 ;","4,096","10","0","0","7"' \\
        '"0x7f10","@!P0 FADD.FTZ R1, R1, R2 ;","2048","","","",""' '"0x7f20","BRA 0x8000 ;","0","0","0","0","0"' \\
        '"0x8000","LDG.E.128 R4, desc[UR4][R2.64] ;","1024","90","80","60","3"' ;;
  esac
  exit 0
fi
echo "ncu $*" >> "$OUT/ncu-args"
while [ "$1" != python3 ]; do shift; done
"$@"
""".replace("@HEADER@", ",".join(f'"{column}"' for column in (
    "Address", "Source", "Instructions Executed", "Warp Stall Sampling (All Samples)", "stall_long_sb",
    "stall_long_sb (Not Issued)", "stall_wait")))  # the real source page's columns: a few of its stall reasons


def test_profile_sh_leaves_the_details_and_the_executed_sass_in_one_file(tmp_path, staged_fake_lane, capsys):
    out, results = staged_fake_lane
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ncu").write_text(FAKE_NCU)
    (bin_dir / "ncu").chmod(0o755)
    run = subprocess.run(["bash", str(out / "profile.sh"), "A", "ln", "^mtl_entry_[0-9]+_layer_norm_float16", "30",
                          "--families", "layer_norm"],
                         env={"OUT": str(results), "PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)},
                         capture_output=True, text=True)
    assert run.returncode == 0 and "ln rc=0" in run.stdout, run.stdout + run.stderr
    args = (results / "ncu-args").read_text()
    assert "--kernel-name regex:^mtl_entry_[0-9]+_layer_norm_float16 --launch-count 1" in args
    assert "--ours-only" in args and "--families layer_norm" in args
    assert "ran with" in (results / "lane.log").read_text()
    report = (results / "ln.txt").read_text()
    assert report.startswith("  Registers Per Thread") and "\n== sass\n" in report

    assert lane_opcodes.by_opcode(report) == {"FFMA": 4096, "FADD": 2048, "BRA": 0, "LDG": 1024}
    assert lane_opcodes.by_opcode(report, full=True)["FADD.FTZ"] == 2048
    assert lane_opcodes.by_opcode(report, lane_opcodes.STALLS_COLUMN) == {"FFMA": 10, "FADD": 0, "BRA": 0, "LDG": 90}
    assert lane_opcodes.stall_reasons(report) == {"long_sb": 80, "wait": 10}
    assert lane_opcodes.executed_span(report) == (3, 0x100)  # the BRA never ran; the LDG lies past it
    assert lane_opcodes.main([str(results / "ln.txt"), "--stalls"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[1].split() == ["all", "100"] and printed[2].split() == ["LDG", "90"]
    assert "stall reason" in printed[-4] and printed[-2].split() == ["long_sb", "80"]
    assert "ln: 3 instructions executed, over 256 bytes of machine code" in printed
    with pytest.raises(ValueError, match="lacks 'stall_barrier' \\(found: Address, Source, "):
        lane_opcodes.sass_rows(report, lane_opcodes.EXECUTED_COLUMN, "stall_barrier")
    with pytest.raises(ValueError, match="no '== sass' line"):
        lane_opcodes.by_opcode("  Registers Per Thread 64\n")
