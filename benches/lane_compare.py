"""Our kernels' times in two or more anchor-lane runs, case by case: an A/B of kernel variants (no GPU needed).

    python benches/lane_compare.py BASE.json VARIANT.json [MORE.json ...] [--families rms_norm,softmax]

Each JSON is one run of benches/anchor_lane.py (its --out FILE.json). For every case found in the first run it
prints our time in each run and first / each (above 1.0: the later run is faster), then the geomean per run.
A ratio only says something about the code when the runs shared a machine state; the runs' measured copy
bandwidths are printed, and runs whose copy bandwidths differ by more than SAME_MACHINE are flagged, since such
pairs differed by up to ~14% on unchanged kernels. The way to get comparable runs: stage each variant's tree
side by side and run anchor_lane.py on each in one device session (docs/trust.md, the anchor lane).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mpskernels.cuda.anchor_report import geomean

SAME_MACHINE = 0.03  # copy bandwidths further apart than this (relative) are flagged as different machine states


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def our_times(run: dict, families: set[str] | None) -> dict[tuple[str, str, str], float | None]:
    """(family, dtype, case) -> our time in µs, None where ours did not run correctly."""
    return {(r["family"], r["dtype"], r["case"]): r["ours_us"] if r["ours_status"] == "ok" else None
            for r in run["rows"] if families is None or r["family"] in families}


def compare(runs: list[dict], names: list[str], families: set[str] | None = None) -> list[str]:
    times = [our_times(run, families) for run in runs]
    lines = ["| family | dtype | case | " + " | ".join(f"{n} µs" for n in names) + " | " +
             " | ".join(f"{names[0]} / {n}" for n in names[1:]) + " |",
             "|---|---|---|" + "---|" * (2 * len(names) - 1)]
    ratios: list[list[float]] = [[] for _ in names[1:]]
    for key, base in times[0].items():
        cells, shares = [], []
        for i, run in enumerate(times):
            t = run.get(key)
            cells.append("—" if t is None else f"{t:.1f}")
            if i and base is not None and t is not None:
                ratios[i - 1].append(base / t)
                shares.append(f"{base / t:.2f}")
            elif i:
                shares.append("—")
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(cells) + " | " + " | ".join(shares) + " |")
    lines.append("")
    for name, r in zip(names[1:], ratios):
        mean = geomean(r)
        lines.append(f"{names[0]} / {name}: geomean {mean:.3f} over {len(r)} cases" if mean is not None
                     else f"{names[0]} / {name}: no case in common")
    return lines + machine_notes(runs, names)


def machine_notes(runs: list[dict], names: list[str]) -> list[str]:
    gbps = [run.get("copy_gbps") for run in runs]
    lines = ["copy bandwidth: " + ", ".join(f"{n} {g:.0f} GB/s" if g else f"{n} unknown" for n, g in zip(names, gbps))]
    base = gbps[0]
    for name, g in zip(names[1:], gbps[1:]):
        if base and g and abs(g - base) / base > SAME_MACHINE:
            lines.append(f"warning: {name}'s copy bandwidth differs from {names[0]}'s by more than "
                         f"{SAME_MACHINE:.0%}: another machine state, ratios are not about the code alone")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="anchor_lane.py JSON files; the first is the base")
    parser.add_argument("--families", help="comma-separated family names (default: all)")
    opts = parser.parse_args()
    if len(opts.runs) < 2:
        parser.error("give at least two runs")
    families = set(opts.families.split(",")) if opts.families else None
    print("\n".join(compare([load(p) for p in opts.runs], [p.stem for p in opts.runs], families)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
