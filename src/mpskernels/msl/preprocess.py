"""Run the C preprocessor over a .metal file against empty stand-ins for the Metal headers.

The kernel's own macros (instantiation macros, stringised host names, #if on __METAL_VERSION__) expand here,
before anything reads the source; line markers keep every line traceable to its .metal file.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from .._paths import emulator_include_dir
from .errors import Diagnostic, MSLCompileError

# What Apple's compiler predefines for MSL 3.2 on macOS and that kernels test.
PREDEFINED = {
    "__METAL_VERSION__": "320",
    "__METAL_MACOS__": "1",
    "__METAL__": "1",
    "__HAVE_BFLOAT__": "1",
    "__HAVE_NATIVE_FAST_MATH__": "1",
}

_DIAGNOSTIC = re.compile(
    r"^(?P<file>[^:\n]+):(?P<line>\d+):(?:(?P<col>\d+):)? (?P<kind>fatal error|error|warning|note): (?P<msg>.*)$",
    re.MULTILINE,
)


# Apple's Metal compiler is clang, so clang++ comes first: it accepts the clang extensions real Metal code uses
# (explicit specialisations inside a class, `{ [0 ... N-1] = 0 }` initialisers, half in anonymous structs).
CLANG_NAMES = ("clang++", "clang++-18", "clang++-17", "clang++-16", "clang++-15", "clang++-14")
FALLBACK_NAMES = ("g++", "c++")


def compiler() -> str:
    """The host C++ compiler: MPSKERNELS_CXX, else clang++ on PATH, else CXX, g++ or c++."""
    for candidate in (os.environ.get("MPSKERNELS_CXX"), *CLANG_NAMES, os.environ.get("CXX"), *FALLBACK_NAMES):
        if candidate and shutil.which(candidate):
            return candidate
    raise RuntimeError("mpskernels' MSL emulator needs a C++17 compiler (clang++ or g++); none was found on PATH")


def parse_diagnostics(stderr: str, rename: dict[str, str] | None = None) -> list[Diagnostic]:
    """Errors from compiler output, with temporary paths renamed back to what the user gave."""
    out = []
    for m in _DIAGNOSTIC.finditer(stderr):
        if m.group("kind") not in ("error", "fatal error"):
            continue
        file = m.group("file")
        for old, new in (rename or {}).items():
            file = file.replace(old, new)
        out.append(Diagnostic(file, int(m.group("line")), m.group("msg"), int(m.group("col") or 0)))
    return out


def preprocess(path: Path, include_dirs: list[Path] = (), defines: dict[str, str] | None = None,
               display_name: str | None = None) -> str:
    """Preprocessed text of a .metal file (with #line markers naming display_name or the file)."""
    path = Path(path)
    stub = emulator_include_dir() / "stub"
    args = [compiler(), "-E", "-x", "c++", "-std=c++17", "-nostdinc", "-I", str(stub), "-I", str(path.parent)]
    for d in include_dirs:
        args += ["-I", str(d)]
    for k, v in {**PREDEFINED, **(defines or {})}.items():
        args.append(f"-D{k}={v}")
    args.append(str(path))
    proc = subprocess.run(args, capture_output=True, text=True)
    rename = {str(path): display_name} if display_name else {}
    if proc.returncode != 0:
        diags = parse_diagnostics(proc.stderr, rename)
        raise MSLCompileError(diags or [Diagnostic(display_name or str(path), 0, proc.stderr.strip())])
    text = proc.stdout
    if display_name:
        text = text.replace(f'"{path}"', '"' + display_name.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return text


def preprocess_source(source: str, name: str = "source.metal", include_dirs: list[Path] = (),
                      defines: dict[str, str] | None = None) -> str:
    """Like preprocess() for source held in a string; diagnostics name `name`."""
    with tempfile.TemporaryDirectory(prefix="mpskernels-msl-") as tmp:
        file = Path(tmp) / "source.metal"
        file.write_text(source)
        return preprocess(file, include_dirs, defines, display_name=name)
