"""What optimize() did, module by module: printable as a table and available as data."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SWAPPED, SKIPPED, ROLLED_BACK = "swapped", "skipped", "rolled back"


@dataclass(frozen=True)
class ReportEntry:
    module: str  # qualified name in the model ("" for the model itself)
    module_type: str
    status: str  # swapped, skipped, rolled back
    kernel: str | None = None
    matched_by: str | None = None  # "type" or "computation"
    detail: str = ""  # why skipped or rolled back; the check's result when swapped
    max_abs_error: float | None = None


@dataclass
class Report:
    entries: list[ReportEntry] = field(default_factory=list)
    disabled: bool = False
    output_check: str | None = None  # whole-model comparison with the original, when example inputs were given

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

    def counts(self) -> dict[str, int]:
        """Swapped modules per kernel."""
        out: dict[str, int] = {}
        for e in self.swapped:
            out[e.kernel] = out.get(e.kernel, 0) + 1
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"disabled": self.disabled, "output_check": self.output_check,
                "entries": [asdict(e) for e in self.entries]}

    def __str__(self) -> str:
        if self.disabled:
            return "mpskernels.optimize: disabled by MPSKERNELS_DISABLE=1; the model is unchanged"
        rows = [("module", "type", "status", "kernel", "detail")]
        for e in self.entries:
            rows.append((e.module or "(model)", e.module_type, e.status, e.kernel or "-", e.detail))
        widths = [min(max(len(r[i]) for r in rows), 48) for i in range(4)]
        lines = []
        for r in rows:
            cells = [r[i][:48].ljust(widths[i]) for i in range(4)]
            lines.append("  ".join(cells + [r[4]]).rstrip())
        lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * 6)
        summary = (f"{len(self.swapped)} swapped, {len(self.skipped)} skipped, {len(self.rolled_back)} rolled back")
        if self.output_check:
            summary += f"; model output vs original: {self.output_check}"
        return "\n".join(lines + [summary])
