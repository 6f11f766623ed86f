"""What optimize() did, module by module: printable as a table and available as data."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SWAPPED, SKIPPED, ROLLED_BACK, NOT_LAUNCHED = "swapped", "skipped", "rolled back", "not launched"
NOT_RECOGNISED = "not recognised"  # a user module whose computation no kernel, recogniser or route covers


@dataclass(frozen=True)
class ReportEntry:
    module: str  # qualified name in the model ("" for the model itself)
    module_type: str
    status: str  # swapped, skipped, rolled back, not launched
    kernel: str | None = None
    matched_by: str | None = None  # "type", "computation", "kernel pack" or "fusion"
    detail: str = ""  # why skipped, rolled back or not launched; the check's and timing's results when swapped
    max_abs_error: float | None = None
    backend: str | None = None  # the backend that ran the kernel while checking (metal, metal-jit, emulator)
    launches: int | None = None  # kernel launches while checking on the example inputs (None: not counted)
    before_us: float | None = None  # median time of the original module on its example inputs, when timed
    after_us: float | None = None  # median time of the swap on the same inputs, when timed


@dataclass
class Report:
    entries: list[ReportEntry] = field(default_factory=list)
    disabled: bool = False
    output_check: str | None = None  # whole-model comparison with the original, when example inputs were given
    not_run: str | None = None  # why optimize() swapped nothing at all (no kernel backend for the model's device)
    timing: str | None = None  # how swaps were timed: "timed on metal", "not timed: emulator", "not timed: off"
    # torch.nn modules looked at that no kernel replaces (Linear, Conv2d, Dropout, containers): type -> count.
    # They get no row: there is nothing to say about each beyond its type.
    no_kernel: dict[str, int] = field(default_factory=dict)

    def add(self, entry: ReportEntry) -> None:
        self.entries.append(entry)

    def by_status(self, status: str) -> list[ReportEntry]:
        return [e for e in self.entries if e.status == status]

    @property
    def swapped(self) -> list[ReportEntry]:
        return self.by_status(SWAPPED)

    @property
    def skipped(self) -> list[ReportEntry]:
        return self.by_status(SKIPPED)

    @property
    def rolled_back(self) -> list[ReportEntry]:
        return self.by_status(ROLLED_BACK)

    @property
    def not_recognised(self) -> list[ReportEntry]:
        return self.by_status(NOT_RECOGNISED)

    @property
    def not_launched(self) -> list[ReportEntry]:
        return self.by_status(NOT_LAUNCHED)

    def timed_total(self) -> tuple[float, float] | None:
        """(before, after) in microseconds over the timed modules: the originals' times, and what runs now (the
        swap's time where it was kept, the original's where it was rolled back for being slower)."""
        timed = [e for e in self.entries if e.before_us is not None and e.after_us is not None]
        if not timed:
            return None
        before = sum(e.before_us for e in timed)
        after = sum(e.after_us if e.status == SWAPPED else e.before_us for e in timed)
        return before, after

    def counts(self) -> dict[str, int]:
        """Swapped modules per kernel."""
        out: dict[str, int] = {}
        for e in self.swapped:
            out[e.kernel] = out.get(e.kernel, 0) + 1
        return out

    def as_dict(self) -> dict[str, Any]:
        total = self.timed_total()
        return {"disabled": self.disabled, "output_check": self.output_check, "not_run": self.not_run,
                "timing": self.timing, "no_kernel": dict(self.no_kernel), "timed_total_us": list(total) if total else None,
                "entries": [asdict(e) for e in self.entries]}

    def __str__(self) -> str:
        if self.disabled:
            return "mpskernels.optimize: disabled by MPSKERNELS_DISABLE=1; the model is unchanged"
        if self.not_run:
            return f"mpskernels.optimize: nothing swapped: {self.not_run}"
        rows = [("module", "type", "status", "kernel", "backend", "launches", "detail")]
        for e in self.entries:
            rows.append((e.module or "(model)", e.module_type, e.status, e.kernel or "-", e.backend or "-",
                         "-" if e.launches is None else str(e.launches), e.detail))
        columns = len(rows[0]) - 1
        widths = [min(max(len(r[i]) for r in rows), 48) for i in range(columns)]
        lines = []
        for r in rows:
            cells = [r[i][:48].ljust(widths[i]) for i in range(columns)]
            lines.append("  ".join(cells + [r[columns]]).rstrip())
        lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * 6)
        summary = (f"{len(self.swapped)} swapped, {len(self.skipped)} skipped, {len(self.rolled_back)} rolled back, "
                   f"{len(self.not_launched)} not launched")
        if self.not_recognised:
            summary += f", {len(self.not_recognised)} not recognised"
        if self.no_kernel:
            listed = ", ".join(f"{t} x{n}" for t, n in sorted(self.no_kernel.items()))
            summary += f"; torch.nn modules with no kernel (not listed): {listed}"
        if self.timing:
            summary += f"; {self.timing}"
        total = self.timed_total()
        if total:
            summary += f"; timed modules {format_us(total[0])} -> {format_us(total[1])} ({total[0] / total[1]:.2f}x)"
        if self.output_check:
            summary += f"; model output vs original: {self.output_check}"
        return "\n".join(lines + [summary])


def format_us(us: float) -> str:
    return f"{us:.3g} µs" if us < 1000 else f"{us / 1000:.3g} ms"
