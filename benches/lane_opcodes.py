"""Executed SASS instructions by opcode, from the Nsight Compute profiles that .lane-staging/profile.sh leaves
(benches/lane_stage.py): one column per profile, so two kernels' instruction mixes read side by side.

    python benches/lane_opcodes.py ln.txt rms.txt [--top 30] [--full-opcodes] [--stalls]

Why: layer_norm and rms_norm ran at the same occupancy and issue rate on the lane while layer_norm executed 1.5x the
instructions (13.1 M against 8.5 M at fp16 4096 x 4096); which instructions make the difference (arithmetic per
element, the shim's collectives: SHFL, WARPSYNC, VOTE, barriers) says whether the gap is in the Metal code or in
the lane's translation of it. The counts are NVIDIA's machine code, not Apple's.
Opcodes are counted without their modifiers (FADD.FTZ -> FADD) unless --full-opcodes. With --stalls the table sums
the PC-sampling stall samples instead (where warps waited, by opcode), followed by the samples by stall reason.
Under the table, each report's executed path: how many instructions ran and over how many bytes of machine code.
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
ADDRESS_COLUMN = "Address"  # the instruction's address, hex
EXECUTED_COLUMN = "Instructions Executed"  # warp-level: one per warp that issued the instruction
STALLS_COLUMN = "Warp Stall Sampling (All Samples)"  # PC samples of warps at the instruction, issued or not
STALL_REASON_PREFIX = "stall_"  # one column per reason (stall_long_sb, stall_barrier, ...): samples at the line
NOT_ISSUED_SUFFIX = "(Not Issued)"  # 'stall_wait (Not Issued)': a subset of 'stall_wait', not counted twice


def sass_rows(text: str, *columns: str) -> list[dict[str, str]]:
    """The source page's CSV rows after the marker line, keyed by the header row (the first row naming the Source
    column: ncu may print a 'Kernel Name' row above it). ValueError where the header lacks one of `columns`."""
    head, marker, tail = text.partition(SASS_MARKER + "\n")
    if not marker:
        raise ValueError(f"no '{SASS_MARKER}' line: not a profile.sh report")
    quoted = [line for line in tail.splitlines() if line.startswith('"')]  # ncu's own notes are not quoted
    records = list(csv.reader(io.StringIO("\n".join(quoted))))
    header = next((r for r in records if SOURCE_COLUMN in r), None)
    missing = [SOURCE_COLUMN] if header is None else [c for c in columns if c not in header]
    if missing:
        found = ", ".join(header) if header else "no header row"
        raise ValueError(f"the SASS table lacks {', '.join(repr(c) for c in missing)} (found: {found})")
    body = records[records.index(header) + 1:]
    return [dict(zip(header, r)) for r in body if len(r) == len(header) and r != header]


def count(value: str) -> int:
    """A table cell as a count: '4,096' -> 4096, '' -> 0; ValueError for text (a header repeated for another
    function of the report)."""
    value = value.replace(",", "").strip()
    return int(float(value)) if value else 0


def opcode(instruction: str, full: bool = False) -> str:
    """The opcode of one SASS line: '@!P0 FADD.FTZ R1, R2, R3 ;' -> 'FADD' ('FADD.FTZ' when full)."""
    parts = instruction.split()
    if parts and parts[0].startswith("@"):
        parts = parts[1:]
    if not parts:
        return "?"
    return parts[0].rstrip(";") if full else parts[0].rstrip(";").split(".")[0]


def by_opcode(text: str, column: str = EXECUTED_COLUMN, full: bool = False) -> Counter:
    """`column` (executed instructions, or stall samples) summed over the instructions of each opcode."""
    counts: Counter = Counter()
    for row in sass_rows(text, column):
        try:
            counts[opcode(row[SOURCE_COLUMN], full)] += count(row[column])
        except ValueError:
            continue
    return counts


def stall_reasons(text: str) -> Counter:
    """PC samples by stall reason over the whole kernel (the stall_* columns summed, 'stall_' dropped; their
    '(Not Issued)' subsets left out)."""
    counts: Counter = Counter()
    for row in sass_rows(text):
        for name, value in row.items():
            if name.startswith(STALL_REASON_PREFIX) and not name.endswith(NOT_ISSUED_SUFFIX):
                try:
                    counts[name[len(STALL_REASON_PREFIX):]] += count(value)
                except ValueError:
                    continue
    return counts


def executed_span(text: str) -> tuple[int, int]:
    """(instructions executed at least once, bytes of machine code from the first of them to the last). A short
    path over a long span jumps across code it does not run: layer_norm_float16's 801 executed instructions lay
    over 189 KB, and its warps waited on instruction fetch (benches/pending/README.md)."""
    addresses = []
    for row in sass_rows(text, ADDRESS_COLUMN, EXECUTED_COLUMN):
        try:
            if count(row[EXECUTED_COLUMN]) > 0:
                addresses.append(int(row[ADDRESS_COLUMN], 16))
        except ValueError:
            continue
    return (len(addresses), max(addresses) - min(addresses)) if addresses else (0, 0)


def table(profiles: dict[str, Counter], top: int, label: str = "opcode") -> str:
    names = list(profiles)
    total = Counter()
    for counts in profiles.values():
        total.update(counts)
    width = max([len(label)] + [len(op) for op in total])
    lines = [f"{label:<{width}}" + "".join(f"  {name:>16}" for name in names)]
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
    parser.add_argument("--stalls", action="store_true",
                        help=f"sum '{STALLS_COLUMN}' by opcode instead of executed instructions, then list the "
                             "samples by stall reason")
    opts = parser.parse_args(argv)
    column = STALLS_COLUMN if opts.stalls else EXECUTED_COLUMN
    try:
        texts = {p.stem: p.read_text() for p in opts.reports}
        profiles = {name: by_opcode(text, column, opts.full_opcodes) for name, text in texts.items()}
        reasons = {name: stall_reasons(text) for name, text in texts.items()} if opts.stalls else {}
        spans = {name: executed_span(text) for name, text in texts.items()}
    except (OSError, ValueError) as error:
        parser.error(str(error))
    print(table(profiles, opts.top))
    for name, (executed, span) in spans.items():
        print(f"{name}: {executed:,} instructions executed, over {span:,} bytes of machine code")
    if reasons:
        print()
        print(table(reasons, opts.top, label="stall reason"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
