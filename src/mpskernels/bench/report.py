"""Report writers: JSON (everything, for tools), Markdown (the tables a person reads), PNG (the speedup
distribution, or, when nothing was timed, correctness by level)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from .results import (ERROR, HARNESS_FAILURE, NOT_EXERCISED, OK, SKIPPED, BenchReport, CandidateResult,
                      ProblemResult)
from .summary import FAST_P, GROUPS, summarize

NA = "n/a"


def write_json(report: BenchReport, path: str | Path) -> Path:
    """Strict JSON: a non-finite number (a NaN error from a broken candidate) is written as a string."""
    path = Path(path)
    path.write_text(json.dumps(_finite(report.as_dict()), indent=2, allow_nan=False) + "\n")
    return path


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_markdown(report: BenchReport, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(markdown(report))
    return path


def markdown(report: BenchReport) -> str:
    return "\n".join(header(report) + [""] + summary_table(report) + [""] + level_table(report) + [""]
                     + problem_table(report) + _not_run(report)) + "\n"


def header(report: BenchReport) -> list[str]:
    m = report.machine
    memory = f" · {m['memory_gb']} GB" if m.get("memory_gb") else ""
    lines = [
        "# mpskernels bench",
        "",
        f"- Machine: {m['chip']} · {m['os']}{memory} · PyTorch {m['torch']} · mpskernels {m['mpskernels']}",
        f"- Device {m['device']}, kernels on the {m['backend']} backend"
        + (" · PYTORCH_ENABLE_MPS_FALLBACK is set: ops MPS lacks ran on the CPU" if m.get("mps_fallback") else ""),
        f"- Timing: {'on the Apple GPU (MPS)' if m['timing'] == 'mps' else m['timing']}",
        f"- Problems: {report.count(OK)} run, {report.count(SKIPPED)} skipped, {report.count(ERROR)} error(s); "
        f"sizes scaled to at most {report.options['max_elements']:,} input + parameter elements; "
        f"{report.seconds:.1f} s (started {report.started})",
    ]
    lines += [f"- Note: {n}" for n in report.notes]
    return lines


def summary_table(report: BenchReport) -> list[str]:
    rows = [["candidates", "problems", "kernel verified", "not exercised", "nothing swapped", "rolled back", "wrong",
             "harness failure",
             "geomean speedup", "median speedup", *(f"fast_{p:.1f}" for p in FAST_P), "review (>10x)"]]
    for s in summarize(report.problems):
        rate = f" ({s.correct_rate:.0%})" if s.correct_rate is not None else ""
        rows.append([GROUPS[s.group], str(s.problems), f"{s.correct}{rate}", str(s.not_exercised),
                     str(s.nothing_swapped), str(s.rolled_back), str(s.wrong), str(s.harness_failure), _x(s.geomean), _x(s.median),
                     *(_share(s.fast_p[p]) for p in FAST_P), str(s.review)])
    out = ["## Summary", ""] + _table(rows)
    if not report.timed:
        out += ["", "Speedups are n/a: nothing was timed on this machine (timing runs only on an Apple GPU)."]
    else:
        out += ["", "Speedups are against the faster of eager and torch.compile; a wrong or slower candidate counts "
                    "1.0 (the baseline is its fallback); a model left as PyTorch (nothing swapped, rolled back) is "
                    "not counted. fast_p: share of problems above p."]
    return out


def level_table(report: BenchReport) -> list[str]:
    """Per KernelBench level: problems found, run and skipped (by reason), and each candidate group's outcomes."""
    rows = [["level", "problems", "ran", "skipped or failed", "candidates", "kernel verified", "not exercised",
             "nothing swapped", "rolled back", "wrong", "harness failure"]]
    for level in sorted({r.level for r in report.problems}, key=lambda v: (v is None, v)):
        mine = [r for r in report.problems if r.level == level]
        ran = [r for r in mine if r.status == OK]
        lead = [str(level) if level is not None else "-", str(len(mine)), str(len(ran)), _reasons(mine)]
        for s in summarize(mine) or [None]:
            if s is None:
                rows.append(lead + ["-"] * 7)
            else:
                rows.append(lead + [GROUPS[s.group], str(s.correct), str(s.not_exercised), str(s.nothing_swapped),
                                    str(s.rolled_back), str(s.wrong), str(s.harness_failure)])
            lead = ["", "", "", ""]
    return ["## By level", ""] + _table(rows)


def _reasons(problems: list[ProblemResult]) -> str:
    """How many problems did not run, by the start of their reason ("time limit", "does not fit the size budget")."""
    counts: dict[str, int] = {}
    for r in problems:
        if r.status != OK:
            key = f"{r.status}: {r.reason.split(':')[0].split(' (')[0]}" if r.reason else r.status
            counts[key] = counts.get(key, 0) + 1
    return "; ".join(f"{n} {why}" for why, n in sorted(counts.items())) or "0"


def problem_table(report: BenchReport) -> list[str]:
    rows = [["problem", "level", "sizes", "baseline (ms)", "candidate", "correct", "time (ms)", "vs eager",
             "vs compile", "max abs err", "notes"]]
    for r in report.problems:
        if r.status != OK:
            continue
        first = True
        for c in r.candidates or [None]:
            lead = [r.name, _level(r), _sizes(r), _baseline(r)] if first else ["", "", "", ""]
            first = False
            if c is None:
                rows.append(lead + ["-", "-", NA, NA, NA, NA, "no candidate applies"])
                continue
            rows.append(lead + [c.name, _correct(c), _ms(c), _x(c.speedup_vs_eager),
                                _x(c.speedup_vs_compile), _err(c), _notes(c, r)])
    return ["## Problems", ""] + _table(rows)


def _not_run(report: BenchReport) -> list[str]:
    rest = [r for r in report.problems if r.status != OK]
    if not rest:
        return []
    return ["", "## Skipped and failed problems", ""] + _table(
        [["problem", "level", "status", "reason"]] + [[r.name, _level(r), r.status, r.reason] for r in rest])


def _table(rows: list[list[str]]) -> list[str]:
    cells = [[_cell(c) for c in row] for row in rows]
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "|".join("---" for _ in cells[0]) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in cells[1:]]


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _x(v: float | None) -> str:
    return NA if v is None else f"{v:.2f}x"


def _share(v: float | None) -> str:
    return NA if v is None else f"{v:.0%}"


def _level(r: ProblemResult) -> str:
    return str(r.level) if r.level is not None else "-"


def _sizes(r: ProblemResult) -> str:
    parts = []
    for name, value in r.sizes.items():
        was = r.file_sizes.get(name)
        parts.append(f"{name}={value}" + (f" (file: {was})" if name in r.scaled and was is not None else ""))
    return ", ".join(parts) or "-"


def _baseline(r: ProblemResult) -> str:
    if not r.timed:
        return NA
    text = f"eager {r.eager.median_ms:.4g}"
    if r.compile is not None:
        text += f", compile {r.compile.median_ms:.4g}"
    return text


def _ms(c: CandidateResult) -> str:
    return NA if c.time is None else f"{c.time.median_ms:.4g} ±{c.time.spread:.0%}"


def _err(c: CandidateResult) -> str:
    v = c.verdict.get("max_abs") if c.verdict else None
    return NA if v is None or not c.verdict.get("comparisons") else f"{v:.2g}"


def _correct(c: CandidateResult) -> str:
    if c.outcome == HARNESS_FAILURE:
        return "not judged (harness failure)"
    if c.outcome == NOT_EXERCISED:
        return "yes, kernel not exercised"
    return "yes" if c.correct else "**NO**"


def _notes(c: CandidateResult, r: ProblemResult) -> str:
    notes = []
    if c.outcome == NOT_EXERCISED:
        notes.append(f"{NOT_EXERCISED}: no kernel launched (the kernels' constraints sent every call to PyTorch)")
    if c.not_launched:
        notes.append("not launched at these sizes, kept as PyTorch: " + ", ".join(c.not_launched))
    if not c.correct:
        notes.append(c.feedback.splitlines()[0] if c.feedback else "incorrect")
        if r.timed:
            notes.append("falls back to the baseline")
    if c.kernels is not None:
        notes.append("swapped " + ", ".join(f"{k}×{n}" for k, n in c.kernels.items()) if c.kernels
                     else "not exercised: runs as PyTorch" if c.not_launched else "rolled back: runs as PyTorch" if c.rolled_back else "nothing swapped: runs as PyTorch")
    if c.rolled_back:
        notes.append("rolled back " + ", ".join(c.rolled_back))
    notes += c.flags
    if r.compile_note and c is r.candidates[0]:
        notes.append(r.compile_note)
    if r.size_note and c is r.candidates[0]:
        notes.append(r.size_note)
    return "; ".join(notes)


def write_png(report: BenchReport, path: str | Path) -> Path:
    """Timed: a histogram of the correct candidates' speedups per group (log scale). Untimed: problems per level
    by outcome, titled with why there are no speedups."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    try:
        if report.timed:
            _speedup_histogram(ax, report)
        else:
            _outcomes_by_level(ax, report)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


def _speedup_histogram(ax, report: BenchReport) -> None:
    import numpy as np

    series = {}
    for s in summarize(report.problems):
        if s.group == "best":
            continue
        values = [c.speedup for r in report.problems if r.timed for c in r.candidates
                  if c.kind == s.group and c.correct and c.speedup]
        if values:
            series[f"{GROUPS[s.group]} (geomean {s.geomean:.2f}x with fallback)"] = values
    every = [v for vs in series.values() for v in vs] or [1.0]
    low, high = min(min(every), 0.5), max(max(every), 2.0)
    bins = np.geomspace(low, high, 30)
    for label, values in series.items():
        ax.hist(values, bins=bins, alpha=0.6, label=label)
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xlabel("speedup over the faster of eager and torch.compile (correct candidates)")
    ax.set_ylabel("problems")
    ax.set_title(f"mpskernels bench on {report.machine['chip']}")
    if series:
        ax.legend()


def _outcomes_by_level(ax, report: BenchReport) -> None:
    levels = sorted({r.level for r in report.problems}, key=lambda v: (v is None, v or 0))
    names = [f"level {v}" if v is not None else "no level" for v in levels]
    counts = {"correct": [], "wrong": [], "skipped/error": []}
    for level in levels:
        mine = [r for r in report.problems if r.level == level]
        ran = [r for r in mine if r.status == OK and r.candidates]
        correct = sum(1 for r in ran if any(c.correct for c in r.candidates))
        counts["correct"].append(correct)
        counts["wrong"].append(len(ran) - correct)
        counts["skipped/error"].append(len(mine) - len(ran))
    bottom = [0] * len(levels)
    for (label, values), color in zip(counts.items(), ("tab:green", "tab:red", "tab:gray")):
        ax.bar(names, values, bottom=bottom, label=label, color=color)
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_ylabel("problems")
    why = report.machine["timing"].removeprefix("unavailable: ").split(";")[0]
    ax.set_title(f"No speedups (timing unavailable: {why})\ncorrectness of the best candidate, by level", fontsize=10)
    ax.legend()
