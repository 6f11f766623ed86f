"""Stage the anchor lane for a GPU machine that has no network and another torch: one folder holding the anchors'
Metal sources (torch 2.13's MPS kernel headers, MLX's from the mlx-metal wheel), platformdirs, one source tree per
commit to compare, and `run.sh`, which runs benches/anchor_lane.py in one of them with the environment the
anchor_lane docstring names.

    python benches/lane_stage.py --out .lane-staging A=9389ee6 B=HEAD [C=some-branch]
    # there:  bash .lane-staging/run.sh B quant 150 --families quantized_linear --cases "x 1x" --ours-only

An A/B of two trees needs only our kernels' times (--ours-only: no anchor, torch or torch.compile, so far fewer
kernels to compile and launches to time; a decode A/B with the anchors on 2026-12-07 timed 2 of 16 cases in 125 s).

A full run (every family and dtype, torch.compile included) in one device call of at most 600 s; name it
anchor-lane, copy $OUT/anchor-lane.json to docs/ and render docs/anchor-lane.md from it (fc3448b's run, with a 180 s
warm-up on a machine that had compiled only the row kernels before, ended after bf16: give the warm-up more of the
budget):

    bash .lane-staging/run.sh B anchor-lane 590 --compile --warm 13 --warm-budget 300 --budget 520 --grace 60 \
        --compile-budget 90

A family that the full run's budget left out (its rows under "Not run") can be timed in a second call with
`--families NAME` and merged: `python benches/anchor_lane.py --render anchor-lane.json NAME.json --out
docs/anchor-lane.md` (runs of one staged commit only).

The lane's GPU tests run from the working tree in the same call, with the staged platformdirs on the path (the
device has no pip; carry .lane-staging) and the staged anchor sources that env.sh names, as run.sh does (without
them the anchors' tests try to download mlx-metal and fail: a call on 2026-12-07 did):

    . .lane-staging/env.sh
    PYTHONPATH=src:$S/pylib python3 -m pytest -q -p no:cacheprovider tests/nvidia_lane/test_gpu*.py

Nsight Compute on one kernel of one case, our kernels only (profile.sh: the details page and the executed SASS by
instruction in $OUT/NAME.txt; `python benches/lane_opcodes.py NAME.txt [OTHER.txt]` sums them by opcode here):

    bash .lane-staging/profile.sh A ln '^mtl_entry_[0-9]+_layer_norm_float16' 200 --families layer_norm --dtypes float16 \
        --cases "x 4096x4096"

run.sh takes VARIANT NAME TIMEOUT and anchor_lane.py's arguments; it leaves $OUT/NAME.json and appends its output to
$OUT/lane.log, so one call of seven runs still returns every result (a device call returns at most 8 files: one on
2026-12-07 lost two runs' results when each run left three). Here, `python benches/anchor_lane.py --render NAME.json
--out NAME.md` writes the Markdown. Put the folder in .git/info/exclude and carry it. Commits are exported with `git
archive`, so uncommitted changes are not staged: commit them on a branch first. TIMEOUT covers the NVRTC compiles of
a fresh machine: attention's took over 75 s there (its runs stopped at 50-75 s), the row kernels' under 45 s; a
later run of the same kernels reads CuPy's cache.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import platformdirs
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from mpskernels.anchors.sources import mlx_include_dir  # noqa: E402

TORCH_HEADER_DIRS = (Path("ATen") / "native" / "mps" / "kernels", Path("c10") / "metal")

# Sourced by run.sh and by a shell that runs the lane's GPU tests: the staged anchor sources, and S = the folder.
ENV_SH = r"""# . env.sh: the staged anchor sources for mpskernels (S = this folder; platformdirs is in $S/pylib).
S="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export MPSKERNELS_TORCH_METAL_INCLUDE=$S/anchor-src/torch MPSKERNELS_TORCH_HEADERS_VERSION=__TORCH__
export MPSKERNELS_ANCHOR_CACHE=$S/anchor-src/cache MPSKERNELS_CXX_KEY=0 PYTHONUNBUFFERED=1
"""

RUN_SH = r"""#!/usr/bin/env bash
# run.sh VARIANT NAME TIMEOUT [anchor_lane.py arguments]: one anchor-lane run in the staged tree VARIANT.
. "$(cd "$(dirname "$0")" && pwd)/env.sh"
v=$1 name=$2 t=$3; shift 3
cd "$S/$v" || exit 1
log="$OUT/lane.log"  # every run's output, one file: a device call returns at most 8 files
echo "== $name ($v, $(cat GIT_SHA)): anchor_lane.py $*" >> "$log"
PYTHONPATH=$PWD/src:$S/pylib MPSKERNELS_GIT_COMMIT=$(cat GIT_SHA) timeout "$t" \
  python3 benches/anchor_lane.py --no-compile --warm 15 --grace 10 --out "$OUT/$name.md" "$@" > "$OUT/$name.tmp" 2>&1
rc=$?
cat "$OUT/$name.tmp" >> "$log"; echo "$name rc=$rc"; tail -n 4 "$OUT/$name.tmp"
rm -f "$OUT/$name.tmp" "$OUT/$name.md"  # the .md renders from the .json
# A run stopped by TIMEOUT keeps the rows its .json may not have caught up with yet.
if [ "$rc" = 0 ]; then rm -f "$OUT/$name.rows.jsonl"; fi
"""

# profile.sh VARIANT NAME KERNEL_REGEX TIMEOUT [anchor_lane.py arguments]: Nsight Compute on the first launch of a
# kernel matching KERNEL_REGEX (the lane's entries are mtl_entry_<n>_<host name>) in one anchor-lane run, our kernels
# only. Leaves $OUT/NAME.txt: the report's details page, then after a line "== sass" its source page as CSV (every
# SASS instruction with its execution counts; benches/lane_opcodes.py sums them by opcode).
PROFILE_SH = r"""#!/usr/bin/env bash
. "$(cd "$(dirname "$0")" && pwd)/env.sh"
v=$1 name=$2 kernel=$3 t=$4; shift 4
cd "$S/$v" || exit 1
log="$OUT/lane.log" rep="/tmp/profile-$name"
echo "== $name ($v, $(cat GIT_SHA)): ncu on regex:$kernel, anchor_lane.py $*" >> "$log"
PYTHONPATH=$PWD/src:$S/pylib MPSKERNELS_GIT_COMMIT=$(cat GIT_SHA) timeout "$t" \
  ncu --target-processes all --kernel-name "regex:$kernel" --launch-count 1 --set full --import-source yes -f \
  -o "$rep" python3 benches/anchor_lane.py --no-compile --ours-only --out "/tmp/profile-$name.md" "$@" >> "$log" 2>&1
echo "$name rc=$?"
{ ncu -i "$rep.ncu-rep" --page details --print-details all; echo "== sass"
  ncu -i "$rep.ncu-rep" --page source --print-source sass --csv; } > "$OUT/$name.txt" 2>&1
tail -n 3 "$OUT/$name.txt"
"""


def stage_anchor_sources(out: Path) -> None:
    include = Path(torch.__file__).resolve().parent / "include"
    for sub in TORCH_HEADER_DIRS:
        shutil.copytree(include / sub, out / "anchor-src" / "torch" / sub, dirs_exist_ok=True)
    mlx_root = mlx_include_dir()  # downloads the wheel into the user's anchor cache once
    shutil.copytree(mlx_root, out / "anchor-src" / "cache" / mlx_root.name, dirs_exist_ok=True)


def stage_platformdirs(out: Path) -> None:
    package = Path(platformdirs.__file__).resolve().parent
    shutil.copytree(package, out / "pylib" / "platformdirs", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))


def stage_commit(out: Path, name: str, rev: str) -> str:
    sha = subprocess.run(["git", "rev-parse", rev], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout.strip()
    tree = out / name
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", sha, "src", "metal", "csrc", "benches"], cwd=ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    (tree / "GIT_SHA").write_text(sha + "\n")
    return sha


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / ".lane-staging")
    parser.add_argument("variants", nargs="+", metavar="NAME=REV")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    stage_anchor_sources(out)
    stage_platformdirs(out)
    for variant in args.variants:
        name, _, rev = variant.partition("=")
        if not name or not rev:
            parser.error(f"variant {variant!r}: expected NAME=REV")
        print(f"{name}: {stage_commit(out, name, rev)}")
    (out / "env.sh").write_text(ENV_SH.replace("__TORCH__", torch.__version__.split("+")[0]))
    (out / "run.sh").write_text(RUN_SH)
    (out / "profile.sh").write_text(PROFILE_SH)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"staged in {out}: {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
