"""Executed SASS instructions by opcode, from the Nsight Compute profiles that .lane-staging/profile.sh leaves
(benches/lane_stage.py): one column per profile, so two kernels' instruction mixes read side by side.

    python benches/lane_opcodes.py ln.txt rms.txt [--top 30] [--full-opcodes]

Why: layer_norm and rms_norm ran at the same occupancy and issue rate on the lane while layer_norm executed 1.5x the
instructions (13.1 M against 8.5 M at fp16 4096 x 4096); which instructions make the difference (arithmetic per
element, the shim's collectives: SHFL, WARPSYNC, VOTE, barriers) says whether the gap is in the Metal code or in
the lane's translation of it. The counts are NVIDIA's machine code, not Apple's.
Opcodes are counted without their modifiers (FADD.FTZ -> FADD) unless --full-opcodes.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections import Counter
from pathlib import Path

SASS_MARKER = "== sass"
SOURCE_COLUMN = "Source"
EXECUTED_COLUMN = "Instructions Executed"  # warp-level: one per warp that issued the instruction


def sass_rows(text: str) -> list[dict[str, str]]:
    """The source page's CSV rows that follow the marker line."""
    head, marker, tail = text.partition(SASS_MARKER + "\n")
    if not marker:
        raise ValueError(f"no '{SASS_MARKER}' line: not a profile.sh report")
    lines = [line for line in tail.splitlines() if line.startswith('"')]  # ncu's own notes are not quoted
    rows = list(csv.DictReader(io.StringIO("\n".join(lines))))
    if not rows or SOURCE_COLUMN not in rows[0] or EXECUTED_COLUMN not in rows[0]:
        found = ", ".join(rows[0]) if rows else "no rows"
        raise ValueError(f"the SASS table lacks '{SOURCE_COLUMN}' or '{EXECUTED_COLUMN}' (found: {found})")
    return rows


def opcode(instruction: str, full: bool = False) -> str:
    """The opcode of one SASS line: '@!P0 FADD.FTZ R1, R2, R3 ;' -> 'FADD' ('FADD.FTZ' when full)."""
    parts = instruction.split()
    if parts and parts[0].startswith("@"):
        parts = parts[1:]
    if not parts:
        return "?"
    return parts[0].rstrip(";") if full else parts[0].rstrip(";").split(".")[0]


def executed_by_opcode(text: str, full: bool = False) -> Counter:
    counts: Counter = Counter()
    for row in sass_rows(text):
        executed = row[EXECUTED_COLUMN].replace(",", "").strip()
        try:
            counts[opcode(row[SOURCE_COLUMN], full)] += int(float(executed)) if executed else 0
        except ValueError:  # a header repeated for another function of the report
            continue
    return counts


def table(profiles: dict[str, Counter], top: int) -> str:
    names = list(profiles)
    total = Counter()
    for counts in profiles.values():
        total.update(counts)
    width = max([len("opcode")] + [len(op) for op in total])
    lines = [f"{'opcode':<{width}}" + "".join(f"  {name:>16}" for name in names)]
    rows = [("all", {n: sum(c.values()) for n, c in profiles.items()})]
    rows += [(op, {n: profiles[n][op] for n in names}) for op, _ in total.most_common(top)]
    for op, by_name in rows:
        lines.append(f"{op:<{width}}" + "".join(f"  {by_name[n]:>16,}" for n in names))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path, help="NAME.txt files from profile.sh")
    parser.add_argument("--top", type=int, default=30, help="opcodes listed, most executed first over all reports")
    parser.add_argument("--full-opcodes", action="store_true", help="keep modifiers (FADD.FTZ, LDG.E.128)")
    opts = parser.parse_args(argv)
    try:
        profiles = {p.stem: executed_by_opcode(p.read_text(), opts.full_opcodes) for p in opts.reports}
    except (OSError, ValueError) as error:
        parser.error(str(error))
    print(table(profiles, opts.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
