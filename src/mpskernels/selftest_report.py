"""selftest's report: `selftest.json` (everything), `selftest.md` (for an issue), `selftest.png` (the speedups, where
any case was timed)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from .selftest import SelftestReport


def write_json(report: SelftestReport, path: Path) -> Path:
    data = {"ok": report.ok, "machine": report.machine, "backend": report.backend, "mode": report.mode,
            "seconds": report.seconds, "cases": [asdict(c) | {"speedup": c.speedup} for c in report.cases],
            "optimize": report.optimize_summary}
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(report: SelftestReport) -> str:
    passed = sum(c.ok for c in report.cases)
    lines = ["# mpskernels selftest", "", f"**{'PASSED' if report.ok else 'FAILED'}**: {passed} of "
             f"{len(report.cases)} cases correct; backend {report.backend}; {report.mode}; "
             f"{report.seconds:.0f} s.", "", "## Machine", "", "| | |", "|---|---|"]
    lines += [f"| {_cell(k)} | {_cell(str(v))} |" for k, v in report.machine.items()]
    timed = [c for c in report.cases if c.speedup is not None]
    if timed:
        lines += ["", "## Speed against PyTorch on this GPU", "",
                  "speedup = PyTorch's time / ours (wall time between synchronisations, medians; above 1 is faster)",
                  "", "| family | dtype | case | ours ms | PyTorch ms | speedup | PyTorch's side |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {c.family} | {c.dtype} | {_cell(c.case)} | {c.ours_ms:.4g} | {c.torch_ms:.4g} | "
                  f"{c.speedup:.2f}x | {c.baseline} |" for c in timed]
    opt = report.optimize_summary
    if opt:
        lines += ["", "## optimize() on the demo decoder", "", f"{opt.get('result')}; timing: {opt.get('timing')}"]
        if opt.get("report"):
            lines += ["", "```", opt["report"], "```"]
        if opt.get("error"):
            lines += ["", "```", opt["error"].rstrip(), "```"]
    failures = report.failures
    lines += ["", f"## Failures ({len(failures)})", ""]
    lines += ["none"] if not failures else [
        f"### {c.family} {c.dtype} {c.case}\n\n```\n{c.detail.rstrip()}\n```\n" for c in failures]
    return "\n".join(lines) + "\n"


def write_png(report: SelftestReport, path: Path) -> Path | None:
    """A bar per timed case (speedup over PyTorch, log scale); None when nothing was timed or matplotlib is absent."""
    timed = [c for c in report.cases if c.speedup is not None]
    if not timed:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(10, max(3.0, 0.22 * len(timed))))
    labels = [f"{c.family} {c.dtype} {c.case}" for c in timed]
    ax.barh(labels, [c.speedup for c in timed], color=["tab:green" if c.speedup >= 1 else "tab:red" for c in timed])
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("speedup over PyTorch on this GPU (PyTorch time / ours)")
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_all(report: SelftestReport, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = [write_json(report, out / "selftest.json")]
    (out / "selftest.md").write_text(markdown(report))
    written.append(out / "selftest.md")
    png = write_png(report, out / "selftest.png")
    return written + ([png] if png else [])
