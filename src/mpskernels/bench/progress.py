"""The progress display while the harness runs: a rich progress bar on a terminal, one line per problem
otherwise (logs, CI), nothing when quiet. Everything goes to stderr; the report goes to files and stdout."""

from __future__ import annotations

import sys
from typing import Protocol, TextIO

from .results import ProblemResult


class Progress(Protocol):
    def start(self, total: int) -> None: ...
    def step(self, problem: str, what: str) -> None: ...  # what the harness is doing on `problem` now
    def done(self, result: ProblemResult) -> None: ...
    def close(self) -> None: ...


def outcome(result: ProblemResult) -> str:
    """One line: the problem's status and each candidate's verdict."""
    if result.status != "ok":
        return f"{result.name}: {result.status} ({result.reason})"
    parts = []
    for c in result.candidates:
        speed = f" {c.speedup:.2f}x" if c.speedup is not None else ""
        parts.append(f"{c.name} {'correct' if c.correct else 'WRONG'}{speed}")
    return f"{result.name}: " + (", ".join(parts) or "no candidate applies") + f" [{result.seconds:.1f}s]"


class Quiet:
    def start(self, total: int) -> None:
        pass

    def step(self, problem: str, what: str) -> None:
        pass

    def done(self, result: ProblemResult) -> None:
        pass

    def close(self) -> None:
        pass


class Lines:
    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.total = self.finished = 0

    def start(self, total: int) -> None:
        self.total = total

    def step(self, problem: str, what: str) -> None:
        pass

    def done(self, result: ProblemResult) -> None:
        self.finished += 1
        print(f"[{self.finished}/{self.total}] {outcome(result)}", file=self.stream, flush=True)

    def close(self) -> None:
        pass


class Bar:
    """A rich progress bar with the current problem and step; finished problems print above it."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        self.console = Console(stderr=True)
        self.bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), console=self.console, transient=True)
        self.task = None

    def start(self, total: int) -> None:
        self.bar.start()
        self.task = self.bar.add_task("bench", total=total)

    def step(self, problem: str, what: str) -> None:
        self.bar.update(self.task, description=f"{problem}: {what}")

    def done(self, result: ProblemResult) -> None:
        self.console.print(outcome(result), markup=False, highlight=False)
        self.bar.advance(self.task)

    def close(self) -> None:
        self.bar.stop()


def choose(quiet: bool = False, stream: TextIO | None = None) -> Progress:
    if quiet:
        return Quiet()
    stream = stream or sys.stderr
    if stream.isatty():
        try:
            return Bar()
        except ImportError:
            pass
    return Lines(stream)
