"""Checks on a pack's Metal source before it is compiled anywhere.

On a Mac the source goes to Apple's compiler and runs on the GPU. On Linux the emulator compiles it as C++ into a
native library, so a source that declares `extern "C" int system(const char*)` or uses inline assembly would run
host code. Those constructs are not Metal; they are refused here, and the emulator's preprocessing already has no
system include path. The generation loop additionally compiles and runs candidates only in a separate process.
"""

from __future__ import annotations

import re

from ..msl.lexer import tokenize

# Tokens that have no place in a Metal compute kernel and would reach the host through the emulator's C++.
FORBIDDEN_TOKENS = {
    "asm": "inline assembly", "__asm__": "inline assembly", "__asm": "inline assembly",
    "extern": "extern declarations (they can name host functions)",
    "__builtin_trap": "host builtins", "__attribute__": "host attributes", "__attribute": "host attributes",
    "dlopen": "host library calls", "syscall": "host system calls",
}
_INCLUDE = re.compile(r"^\s*#\s*include\s*(.*)$", re.MULTILINE)
_ALLOWED_INCLUDE = re.compile(r"^<metal_[a-z_]+>$")


class SourceError(ValueError):
    pass


def check_pack_source(source: str, name: str = "kernel.metal") -> None:
    """Raises SourceError naming the line of the first construct a pack's Metal source may not use."""
    for m in _INCLUDE.finditer(source):
        target = m.group(1).strip()
        if not _ALLOWED_INCLUDE.match(target):
            line = source.count("\n", 0, m.start()) + 1
            raise SourceError(f"{name}:{line}: #include {target} is not allowed; a pack's source is one file that "
                              "includes only Metal headers (<metal_stdlib>, ...)")
    for token in tokenize(source, name):
        why = FORBIDDEN_TOKENS.get(token.text)
        if why:
            raise SourceError(f"{name}:{token.line}: '{token.text}' is not allowed in a kernel pack ({why})")
