"""MSL language rules that a C++ compiler would accept but Apple's Metal compiler rejects."""

from __future__ import annotations

from .errors import Diagnostic, MSLCompileError
from .lexer import Token

_FORBIDDEN = {
    "double": "MSL has no double precision (Apple GPUs have no fp64): use float",
    "try": "MSL has no exceptions",
    "catch": "MSL has no exceptions",
    "throw": "MSL has no exceptions",
    "dynamic_cast": "MSL has no run-time type information",
    "typeid": "MSL has no run-time type information",
    "new": "MSL has no dynamic allocation (new/delete)",
    "delete": "MSL has no dynamic allocation (new/delete)",
    "virtual": "MSL has no virtual functions",
    "goto": "MSL does not support goto",
}


def check_rules(tokens: list[Token]) -> None:
    """Raises MSLCompileError listing every use of a C++ feature MSL forbids."""
    diags = []
    for i, t in enumerate(tokens):
        if t.kind != "id" or t.text not in _FORBIDDEN:
            continue
        if t.text == "delete" and i > 0 and tokens[i - 1].text == "=":
            continue  # `= delete` on a special member function is fine
        diags.append(Diagnostic(t.file, t.line, f"'{t.text}': {_FORBIDDEN[t.text]}"))
    if diags:
        raise MSLCompileError(diags)
