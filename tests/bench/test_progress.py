"""The progress display: one line per problem off a terminal, a rich bar on one, nothing when quiet."""

from __future__ import annotations

import io

from mpskernels.bench import progress

from .fakes import candidate, problem, timed_report


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_lines_off_a_terminal():
    stream = io.StringIO()
    shown = progress.choose(stream=stream)
    assert isinstance(shown, progress.Lines)
    report = timed_report()
    shown.start(len(report.problems))
    for r in report.problems:
        shown.step(r.name, "verifying optimize")
        shown.done(r)
    shown.close()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "[1/5] a: optimize correct 2.00x [0.0s]"
    assert lines[3] == "[4/5] d: optimize WRONG [0.0s]"
    assert lines[4].startswith("[5/5] e: skipped (the reference uses an op that mps lacks")


def test_quiet_and_terminal_choices(capsys):
    assert isinstance(progress.choose(quiet=True, stream=Terminal()), progress.Quiet)
    bar = progress.choose(stream=Terminal())
    assert isinstance(bar, progress.Bar)
    bar.start(1)
    bar.step("a", "timing")
    bar.done(problem("a", candidate()))
    bar.close()
    assert "a: optimize correct" in capsys.readouterr().err
