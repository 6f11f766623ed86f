"""The anchor lane's report: one row per (family, dtype, case) with our kernel, the anchors' Metal kernels for the same
op, PyTorch's native CUDA op and torch.compile, all timed on one NVIDIA GPU in one run; rendered as
docs/anchor-lane.md and docs/anchor-lane.json (`{"machine": ..., "rows": [...]}`).

Ratios are speedups of ours: `other_time / ours_time`, so above 1 means ours is faster. The JSON keeps every
measurement (each anchor's too), so the Markdown can be rendered again from it without the GPU.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

SPEEDUP_RULE = "speedup = other's time / our time: above 1.0 means ours is faster, below 1.0 means ours is slower"

MEANING = """\
What these timings mean for Apple GPUs: our kernels and the anchors' kernels (PyTorch's MPS kernels, MLX's) are
Apple-tuned Metal, translated and launched the same way through this lane, so their ratio is evidence about the code
(bytes moved, parallelism, loads per thread). The absolute times are an NVIDIA GPU's and say nothing about an
M-series GPU; PyTorch's native CUDA op and torch.compile are NVIDIA-tuned and show what the hardware allows, not
what a Mac runs. See docs/trust.md."""


@dataclass
class Result:
    """One implementation on one case: its median time and its largest error against the float64 reference.

    status: "ok" (ran, within tolerance), "wrong" (ran, outside tolerance: its time is kept but never compared),
    "loose" (a PyTorch baseline, or an anchor kernel within a few times the tolerance, outside the bound as its own
    rounding in the op's dtype makes it: still compared), "error" (compile, launch or other failure), "n/a" (it does not cover this case: the op raised
    NotImplementedError, or is not instantiated for the dtype)."""

    us: float | None = None
    max_abs_error: float | None = None
    status: str = "ok"
    note: str = ""
    kernels: tuple[str, ...] = ()
    timing: str = ""  # how it was timed: "graph xN" (CUDA graph of N launches) or "stream"

    @property
    def ok(self) -> bool:
        """A time that may be compared."""
        return self.status in ("ok", "loose") and self.us is not None


@dataclass
class Row:
    family: str
    dtype: str
    case: str
    bytes_moved: int | None  # minimum bytes the op must move; None where it is not memory-bound
    ours: Result
    anchors: dict[str, Result] = field(default_factory=dict)
    torch_native: Result | None = None
    torch_compile: Result | None = None
    fits_l2: bool = False  # inputs and outputs fit the GPU's L2 cache: back-to-back launches may read from it
    copy_gbps: float | None = None  # its run's copy bandwidth, where it differs from the report's (merge_reports)
    # A device copy of the row's minimum bytes (half read, half written), timed as the row's kernels are: what the
    # memory system does at this size (at 8 MB a kernel's fixed costs weigh where at 1 GiB they vanish).
    same_size_copy_us: float | None = None

    def best_anchor(self) -> tuple[str | None, Result | None]:
        """The fastest anchor that ran correctly; else the first one that did not (its reason goes in the row)."""
        good = [(name, r) for name, r in self.anchors.items() if r.ok]
        if good:
            return min(good, key=lambda item: item[1].us)
        tried = [(name, r) for name, r in self.anchors.items() if r.status != "n/a"]
        return tried[0] if tried else (None, None)

    def best_torch(self) -> float | None:
        times = [r.us for r in (self.torch_native, self.torch_compile) if r is not None and r.ok]
        return min(times) if times else None


def speedup(other_us: float | None, ours: Result) -> float | None:
    if other_us is None or not ours.ok or ours.us <= 0:
        return None
    return other_us / ours.us


def pct_copy(bytes_moved: int | None, us: float | None, copy_gbps: float | None) -> float | None:
    """Achieved bandwidth as a percentage of the measured device copy bandwidth (null where not memory-bound)."""
    if bytes_moved is None or us is None or not copy_gbps or us <= 0:
        return None
    return 100.0 * bytes_moved / (us * 1e-6) / (copy_gbps * 1e9)


def pct_same_size_copy(copy_us: float | None, us: float | None) -> float | None:
    """Our time against a copy of the same bytes: 100 where ours moves them as fast as the copy does."""
    if copy_us is None or us is None or us <= 0:
        return None
    return 100.0 * copy_us / us


def row_json(row: Row, copy_gbps: float | None) -> dict[str, Any]:
    """The flat fields issue 12 asks for, then every measurement in full."""
    name, best = row.best_anchor()
    native, compiled = row.torch_native, row.torch_compile
    return {
        "family": row.family, "dtype": row.dtype, "case": row.case,
        "ours_us": row.ours.us if row.ours.ok else None,
        "ours_status": row.ours.status, "ours_note": row.ours.note,
        "max_abs_error": row.ours.max_abs_error,
        "anchor": name,
        "anchor_us": best.us if best is not None and best.ok else None,
        "anchor_max_abs_error": best.max_abs_error if best is not None else None,
        "anchor_status": best.status if best is not None else None,
        "speedup_vs_anchor": speedup(best.us if best is not None and best.ok else None, row.ours),
        "torch_native_us": native.us if native is not None and native.ok else None,
        "torch_compile_us": compiled.us if compiled is not None and compiled.ok else None,
        "speedup_vs_torch": speedup(row.best_torch(), row.ours),
        "pct_copy": pct_copy(row.bytes_moved, row.ours.us if row.ours.ok else None, row.copy_gbps or copy_gbps),
        "anchor_pct_copy": pct_copy(row.bytes_moved, best.us if best is not None and best.ok else None,
                                    row.copy_gbps or copy_gbps),
        "pct_same_size_copy": pct_same_size_copy(row.same_size_copy_us, row.ours.us if row.ours.ok else None),
        "bytes_moved": row.bytes_moved, "fits_l2": row.fits_l2, "copy_gbps": row.copy_gbps,
        "same_size_copy_us": row.same_size_copy_us,
        "ours": asdict(row.ours),
        "anchors": {k: asdict(v) for k, v in row.anchors.items()},
        "torch_native": asdict(native) if native is not None else None,
        "torch_compile": asdict(compiled) if compiled is not None else None,
    }


def _result(d: dict | None) -> Result | None:
    if d is None:
        return None
    return Result(**{**d, "kernels": tuple(d.get("kernels", ()))})


def row_from_json(d: dict[str, Any]) -> Row:
    return Row(d["family"], d["dtype"], d["case"], d["bytes_moved"], _result(d["ours"]),
               {k: _result(v) for k, v in d["anchors"].items()}, _result(d["torch_native"]),
               _result(d["torch_compile"]), d.get("fits_l2", False), d.get("copy_gbps"), d.get("same_size_copy_us"))


@dataclass
class AnchorLaneReport:
    machine: dict[str, str]
    copy_gbps: float | None = None
    rows: list[Row] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)


def to_json(report: AnchorLaneReport) -> dict[str, Any]:
    return {"machine": report.machine, "copy_gbps": report.copy_gbps, "speedup": SPEEDUP_RULE,
            "rows": [row_json(r, report.copy_gbps) for r in report.rows], "not_run": report.not_run}


def from_json(d: dict[str, Any]) -> AnchorLaneReport:
    return AnchorLaneReport(d["machine"], d.get("copy_gbps"), [row_from_json(r) for r in d["rows"]],
                            list(d.get("not_run", [])))


def merge_reports(reports: list[AnchorLaneReport]) -> AnchorLaneReport:
    """Runs of one commit on one kind of GPU as one report: a later run's row replaces an earlier run's row of the
    same family, dtype and case, and each row keeps its own run's copy bandwidth for its % of copy.
    Why: a full run must fit one device call (600 s), and a family timed in a call of its own (attention's whole
    grid compiles for minutes) joins the rest here. Ratios stay within one run: a row's times all come from one."""
    for key in ("mpskernels commit", "GPU"):
        values = {str(r.machine.get(key)) for r in reports}
        if len(values) > 1:
            raise ValueError(f"runs to merge must share the {key}; these have {', '.join(sorted(values))}")
    rows: dict[tuple[str, str, str], Row] = {}
    for report in reports:
        for row in report.rows:
            rows[(row.family, row.dtype, row.case)] = replace(row, copy_gbps=row.copy_gbps or report.copy_gbps)
    # The page's tables read in blocks of one dtype and family, in the order the runs first met them.
    dtypes = list(dict.fromkeys(r.dtype for r in rows.values()))
    families = list(dict.fromkeys(r.family for r in rows.values()))
    merged_rows = sorted(rows.values(), key=lambda r: (dtypes.index(r.dtype), families.index(r.family)))
    timed = {f"{r.family} {r.dtype}" for r in merged_rows}
    not_run = [n for r in reports for n in r.not_run if n.split(":")[0] not in timed]
    machine = dict(reports[0].machine)
    machine["merged runs"] = "; ".join(
        f"{r.machine.get('date (UTC)', '?')}: {len(r.rows)} rows, copy {r.copy_gbps or 0:.0f} GB/s" for r in reports
    ) + " (each row's % of copy is against its own run's copy bandwidth)"
    return AnchorLaneReport(machine, reports[0].copy_gbps, merged_rows, not_run)


# ---- Markdown ----


def geomean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None and v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def _us(v: float | None) -> str:
    return "—" if v is None else f"{v:.1f}" if v < 1000 else f"{v:.0f}"


def _x(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}×"


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v:.0f}%"


def _err(v: float | None) -> str:
    return "—" if v is None else f"{v:.1e}"


def _cell(result: Result | None) -> str:
    """A time, or why there is none; † marks a result outside the bound that is still compared ("loose")."""
    if result is None:
        return "—"
    if result.ok:
        return _us(result.us) + (" †" if result.status == "loose" else "")
    return result.status


def family_summary(report: AnchorLaneReport) -> list[str]:
    # The torch ratio is over the faster of the native op and torch.compile, and torch.compile runs within a time
    # budget: a family where it timed fewer rows has a torch ratio against the native op alone there (rope's
    # written-out form ran 20-130x slower than compiled on the H100), so the count goes beside the ratio.
    lines = ["| family | rows | ours vs best anchor (geomean) | worst | ours vs best torch (geomean) | worst | "
             "% of copy (min, cases past L2) | % of same-size copy (min) | problems | rows with torch.compile |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    families: dict[str, list[dict]] = {}
    for r in report.rows:
        families.setdefault(r.family, []).append(row_json(r, report.copy_gbps))
    for family, rows in families.items():
        vs_anchor = [r["speedup_vs_anchor"] for r in rows if r["speedup_vs_anchor"] is not None]
        vs_torch = [r["speedup_vs_torch"] for r in rows if r["speedup_vs_torch"] is not None]
        # The bandwidth target is for model sizes: a case that fits L2 (8 rows) is bound by latency, not bytes.
        pcts = [r["pct_copy"] for r in rows if r["pct_copy"] is not None and not r["fits_l2"]]
        same_size = [r["pct_same_size_copy"] for r in rows if r["pct_same_size_copy"] is not None]
        problems = sum(1 for r in rows if r["ours_status"] != "ok") + sum(
            1 for r in rows for a in r["anchors"].values() if a["status"] in ("wrong", "error"))
        compiled = sum(1 for r in rows if (r["torch_compile"] or {}).get("status") in ("ok", "loose"))
        lines.append(f"| {family} | {len(rows)} | {_x(geomean(vs_anchor))} | {_x(min(vs_anchor, default=None))} | "
                     f"{_x(geomean(vs_torch))} | {_x(min(vs_torch, default=None))} | "
                     f"{_pct(min(pcts, default=None))} | {_pct(min(same_size, default=None))} | {problems} | "
                     f"{compiled} of {len(rows)} |")
    return lines


def rows_table(report: AnchorLaneReport) -> list[str]:
    lines = ["| family | dtype | case | ours µs | % copy | % same-size copy | best anchor | anchor µs | ours vs anchor | "
             "torch µs | compile µs | ours vs torch | max abs err (ours / anchor) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in report.rows:
        j = row_json(row, report.copy_gbps)
        _, best = row.best_anchor()
        l2 = " (L2)" if row.fits_l2 else ""
        lines.append(
            f"| {row.family} | {row.dtype} | {row.case}{l2} | {_cell(row.ours)} | {_pct(j['pct_copy'])} | "
            f"{_pct(j['pct_same_size_copy'])} | "
            f"{j['anchor'] or '—'} | {_cell(best)} | {_x(j['speedup_vs_anchor'])} | {_cell(row.torch_native)} | "
            f"{_cell(row.torch_compile)} | {_x(j['speedup_vs_torch'])} | "
            f"{_err(row.ours.max_abs_error)} / {_err(best.max_abs_error if best else None)} |")
    return lines


def problems(report: AnchorLaneReport, statuses: tuple[str, ...] = ("wrong", "error")) -> list[str]:
    """Every result with one of `statuses`, with its reason."""
    lines = []
    for row in report.rows:
        where = f"{row.family} {row.dtype} {row.case}"
        named = [("ours", row.ours), *row.anchors.items(), ("torch native", row.torch_native),
                 ("torch.compile", row.torch_compile)]
        for name, r in named:
            if r is not None and r.status in statuses:
                lines.append(f"- {where}: {name}: {r.status}: {r.note}")
    return lines


def to_markdown(report: AnchorLaneReport, data_file: str = "docs/anchor-lane.json") -> str:
    """The report as Markdown; `data_file`: where the same data is, as JSON (the page names it)."""
    out = ["# The anchor lane: our kernels against the anchors' Metal kernels on one NVIDIA GPU", "",
           f"Written by `benches/anchor_lane.py` (issue 12); the same data is in `{data_file}`.", ""]
    out += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in report.machine.items()]
    if report.copy_gbps:
        out.append(f"| device copy bandwidth | {report.copy_gbps:.0f} GB/s (read + write, 1 GiB) |")
    out += ["", "## How to read it", "",
            f"- **{SPEEDUP_RULE}.** \"ours vs anchor\" divides the fastest anchor kernel that ran correctly "
            "(or chain of anchor kernels doing the same op) by ours; \"ours vs torch\" divides the faster of "
            "PyTorch's native CUDA op and torch.compile of the written-out form by ours.",
            "- Times are medians over batches, by CUDA events, of prepared launches (no argument checks, no "
            "allocation); \"graph xN\" timings replay a CUDA graph of N launches, so host launch cost is not "
            "counted for microsecond kernels (each result's method is in the JSON).",
            "- % copy: the op's minimum bytes (inputs read once, outputs written once) per second over the measured "
            "device copy bandwidth; — where the op is not memory-bound. Cases marked (L2) fit the L2 cache, so "
            "repeated launches may exceed DRAM bandwidth.",
            "- % same-size copy: a device copy of the case's minimum bytes (half read, half written), timed the way "
            "the case's kernels are (warm caches, a CUDA graph for short ones), over our time. It shows what the "
            "memory system does at that size: a copy of a few MB does not reach the 1 GiB copy's bandwidth either, "
            "so where % copy is low and this is high, fixed costs (launch, latency, the cache) set the time. "
            "Shown beside % copy, not in its place: the issue's targets are in % copy.",
            "- Every timed result (ours, each anchor, torch's) was compared with a float64 reference by the "
            "verifier's rule: the dtype's tolerance (mpskernels.tolerances) plus twice PyTorch's own error in the "
            "dtype plus rtol times the result's RMS. Ours outside it shows \"wrong\" and has no ratio. A PyTorch "
            "baseline outside it, or an anchor kernel within 8x the tolerance (its own rounding in its dtype: "
            "MLX's half-precision chains, PyTorch's prefill rounding q * scale), keeps its time, marked †, is "
            "compared, and is listed below; an anchor further off is \"wrong\".",
            "", MEANING, "", "## By family", ""]
    out += family_summary(report)
    out += ["", "## Every case", ""] + rows_table(report)
    out += ["", "## Failures and errors (ours, anchors, torch)", ""] + (problems(report) or ["none"])
    loose = problems(report, ("loose",))
    if loose:
        out += ["", "## Baselines and anchors outside the bound (†: timed, still compared)", ""] + loose
    skipped = problems(report, ("n/a",))
    if skipped:
        out += ["", "<details><summary>Not applicable (an anchor that does not cover the case or dtype, a budget "
                f"spent): {len(skipped)}</summary>", ""] + skipped + ["", "</details>"]
    if report.not_run:
        out += ["", "## Not run", ""] + [f"- {n}" for n in report.not_run]
    return "\n".join(out) + "\n"
