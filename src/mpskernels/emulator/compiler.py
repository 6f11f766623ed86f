"""Compile emulator C++ into a shared library, cached on disk by content hash."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

from .._paths import cache_dir, emulator_include_dir
from ..msl.errors import Diagnostic, MSLCompileError
from ..msl.preprocess import compiler, parse_diagnostics

# -fno-strict-aliasing: kernels reinterpret buffers freely (float* as float4*), which MSL allows.
# -fwrapv: signed overflow wraps on the GPU; in C++ it is undefined and -O2 may miscompile it.
# -fsigned-char: MSL's char is signed (it is not on aarch64 Linux by default).
FLAGS = (
    "-std=c++17", "-O2", "-fPIC", "-shared", "-pthread", "-fno-exceptions", "-fno-rtti", "-fvisibility=hidden",
    "-fno-strict-aliasing", "-fwrapv", "-fsigned-char", "-fno-math-errno", "-w",
)  # fmt: skip

SHIM_HEADER = "mtl/shim.h"


def extra_flags() -> list[str]:
    """MPSKERNELS_EMULATOR_CXXFLAGS adds compiler flags (e.g. -DMTL_FIBER_UCONTEXT, -fsanitize=...)."""
    return os.environ.get("MPSKERNELS_EMULATOR_CXXFLAGS", "").split()
_LOCATION = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?:\d+:)?", re.MULTILINE)


@lru_cache(maxsize=1)
def toolchain_fingerprint() -> str:
    """Hash of the shim headers, the compiler's version and the flags: any change invalidates the cache."""
    h = hashlib.sha256()
    for path in sorted((emulator_include_dir() / "mtl").rglob("*")):
        if path.is_file():
            h.update(path.name.encode())
            h.update(path.read_bytes())
    version = subprocess.run([compiler(), "--version"], capture_output=True, text=True).stdout
    h.update(version.encode())
    h.update(" ".join(FLAGS).encode())
    return h.hexdigest()


def shim_header_path() -> str:
    return str(emulator_include_dir() / SHIM_HEADER)


def build(cpp_source: str) -> Path:
    """Path of the shared library for this C++ source, compiling it unless the cache has it."""
    flags = [*FLAGS, *extra_flags()]
    key = hashlib.sha256((toolchain_fingerprint() + " ".join(flags) + cpp_source).encode()).hexdigest()[:32]
    out = cache_dir() / f"{key}.so"
    if out.exists():
        return out
    with tempfile.TemporaryDirectory(prefix="mpskernels-emu-") as tmp:
        src = Path(tmp) / "kernel.cpp"
        src.write_text(cpp_source)
        partial = Path(tmp) / "kernel.so"
        cmd = [compiler(), *flags, "-I", str(emulator_include_dir()), str(src), "-o", str(partial)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise compile_error(proc.stderr, str(src))
        # Atomic publish: concurrent builders of the same source each rename a complete file.
        fd, staging = tempfile.mkstemp(dir=cache_dir(), suffix=".so.tmp")
        os.close(fd)
        os.replace(partial, staging)
        os.replace(staging, out)
    return out


def compile_error(stderr: str, generated: str) -> MSLCompileError:
    """Errors against .metal lines: an error inside the shim is reported at the kernel line that led to it."""
    include = str(emulator_include_dir())
    lines = stderr.splitlines()
    diags = []
    last_user_site = None
    for i, line in enumerate(lines):
        site = user_site(line, include, generated)
        if site:
            last_user_site = site
        for d in parse_diagnostics(line):
            if d.file.startswith(include):
                # g++ names the kernel line before the error ("required from here"), clang++ after it
                # ("note: in instantiation of ... requested here"), up to the next error.
                site = next_user_note(lines[i + 1:], include, generated) or last_user_site
                if site:
                    d = Diagnostic(site[0], site[1], d.message)
            diags.append(d)
    details = "\n".join(stderr.replace(include + "/", "<emulator>/").splitlines()[:80])
    if not diags:
        diags = [Diagnostic("<emulator>", 0, "C++ compilation failed")]
    return MSLCompileError(diags, details)


def user_site(line: str, include: str, generated: str) -> tuple[str, int] | None:
    """(file, line) where a compiler output line points into the kernel's own source, else None."""
    for prefix in ("In file included from ", "                 from "):
        if line.startswith(prefix):
            return None  # an include chain, not a site
    m = _LOCATION.match(line)
    if m and not m.group("file").startswith(include) and m.group("file") != generated:
        return m.group("file"), int(m.group("line"))
    return None


def next_user_note(following: list[str], include: str, generated: str) -> tuple[str, int] | None:
    """The first kernel-source instantiation note after an error, before the next error (clang++ only)."""
    for line in following:
        if ": error: " in line or ": fatal error: " in line:
            return None
        if ": note: " in line and "requested here" in line:
            site = user_site(line, include, generated)
            if site:
                return site
    return None
