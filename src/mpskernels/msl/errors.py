"""Errors raised while reading, compiling or running Metal Shading Language source."""

from __future__ import annotations

from dataclasses import dataclass


class MSLError(Exception):
    """Base class of every error about MSL source or its execution."""


@dataclass(frozen=True)
class Diagnostic:
    file: str
    line: int
    message: str
    column: int = 0

    def __str__(self) -> str:
        col = f":{self.column}" if self.column else ""
        return f"{self.file}:{self.line}{col}: {self.message}"


class MSLCompileError(MSLError):
    """The source breaks a rule of MSL or fails to compile; every diagnostic names a .metal file and line."""

    def __init__(self, diagnostics: list[Diagnostic] | Diagnostic, details: str = ""):
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics = list(diagnostics)
        self.details = details
        text = "\n".join(str(d) for d in self.diagnostics)
        if details:
            text += "\n" + details
        super().__init__(text)


class KernelExecutionError(MSLError):
    """A dispatch failed inside the emulator: divergent collective, barrier deadlock, resource limit, ..."""


class DispatchError(MSLError, ValueError):
    """The arguments of a dispatch do not fit the kernel (missing buffer, wrong dtype, bad grid)."""
