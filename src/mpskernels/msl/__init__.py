"""The MSL front end shared by the CPU emulator and the NVIDIA lane: preprocess, tokenize, find kernels and
their parameter roles, enforce MSL rules, and emit C++."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .checks import check_rules
from .errors import Diagnostic, DispatchError, KernelExecutionError, MSLCompileError, MSLError
from .lexer import tokenize
from .parse import BUILTINS, Entry, FunctionConstant, KernelDef, Param, Program, parse
from .preprocess import preprocess, preprocess_source
from .transform import Specialization, to_cpp

__all__ = [
    "BUILTINS", "Diagnostic", "DispatchError", "Entry", "FunctionConstant", "KernelDef", "KernelExecutionError",
    "MSLCompileError", "MSLError", "Param", "Program", "Specialization", "TranslationUnit", "read_file",
    "read_source", "to_cpp",
]  # fmt: skip


@dataclass
class TranslationUnit:
    """A preprocessed, parsed and rule-checked Metal source."""

    name: str
    text: str  # preprocessed
    program: Program

    def cpp(self, spec: Specialization, shim_header: str) -> str:
        return to_cpp(self.text, self.program, spec, shim_header)


def _analyse(name: str, text: str) -> TranslationUnit:
    tokens = tokenize(text, name)
    check_rules(tokens)
    return TranslationUnit(name, text, parse(tokens))


def read_file(path: str | Path, include_dirs=(), defines=None) -> TranslationUnit:
    path = Path(path)
    return _analyse(str(path), preprocess(path, list(include_dirs), defines))


def read_source(source: str, name: str = "source.metal", include_dirs=(), defines=None) -> TranslationUnit:
    return _analyse(name, preprocess_source(source, name, list(include_dirs), defines))
