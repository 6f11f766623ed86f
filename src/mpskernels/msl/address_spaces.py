"""The address-space check: compile a Metal file once more, with clang, keeping MSL's address spaces.

The emulator erases `device`, `threadgroup` and `thread` (g++ has no address spaces), so a kernel that hands a
device pointer to a threadgroup one compiles and runs there, and fails only on Apple's compiler. This check
rewrites the same preprocessed text with each address space as a distinct clang address space -- `device` 1,
`constant` 2 (and const), `threadgroup` 3, `thread` the default -- and runs `clang++ -fsyntax-only` against a
declarations-only header (csrc/emu/check/metal_check.h). Mixing pointers or references of two spaces, writing
through `constant`, or passing threadgroup memory where `device` memory is expected is then a compile error at
the `.metal` line. C-style and reinterpret casts across spaces still pass, as they do in clang.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

from .._paths import emulator_include_dir
from .errors import Diagnostic, MSLCompileError
from .lexer import Token, matching
from .parse import ADDRESS_SPACES, Program, is_attribute_start
from .transform import Edits, const_beside, float_literal, is_coherence_qualifier, is_static_constant_variable
from . import TranslationUnit, read_file, read_source

HEADER = "check/metal_check.h"
# aarch64: a target where clang has _Float16 and __fp16, which stand in for half and bfloat.
FLAGS = ("-std=c++17", "-fsyntax-only", "-target", "aarch64-linux-gnu", "-nostdinc", "-w", "-ferror-limit=0",
         "-fno-exceptions", "-fno-rtti")  # fmt: skip

_SPACE = {
    "device": "MTL_AS_DEVICE",
    "threadgroup": "MTL_AS_THREADGROUP",
    "thread": "",
    "constant": "const MTL_AS_CONSTANT",
}
_VECTOR_TYPE = re.compile(r"(?:packed_)?(?:float|half|bfloat|int|uint|short|ushort|char|uchar|long|ulong|bool)[234]")
_CLANG_DIAGNOSTIC = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?P<col>\d+): (?P<kind>error|note): (?P<msg>.*)$",
                               re.MULTILINE)


@lru_cache(maxsize=1)
def clang() -> str | None:
    """The clang++ on PATH that the check runs, or None."""
    for name in ("clang++", "clang++-14", "clang++-15", "clang++-16", "clang++-17", "clang++-18"):
        path = shutil.which(name)
        if path:
            return path
    return None


def check_address_spaces(path: str | Path, include_dirs=(), defines=None) -> None:
    """Raises MSLCompileError, with a diagnostic per `.metal` line, if the file mixes address spaces."""
    run_check(read_file(path, include_dirs, defines))


def check_address_spaces_source(source: str, name: str = "source.metal", include_dirs=(), defines=None) -> None:
    run_check(read_source(source, name, include_dirs, defines))


def run_check(unit: TranslationUnit) -> None:
    compiler = clang()
    if compiler is None:
        raise RuntimeError("the address-space check needs clang++ (apt-get install clang)")
    text = to_checked_cpp(unit.text, unit.program)
    include = emulator_include_dir()
    with tempfile.TemporaryDirectory(prefix="mpskernels-as-") as tmp:
        src = Path(tmp) / "check.cpp"
        src.write_text(text)
        proc = subprocess.run([compiler, *FLAGS, "-I", str(include), str(src)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise MSLCompileError(diagnostics(proc.stderr, str(include), str(src)) or
                              [Diagnostic(unit.name, 0, "address-space check failed")],
                              proc.stderr.replace(str(include) + "/", "<check>/"))


def diagnostics(stderr: str, include: str, generated: str) -> list[Diagnostic]:
    """clang's errors at `.metal` lines; an error inside the check header goes to the kernel line behind it.

    The first "candidate function not viable" note of an error is appended to it: for a call, that note holds the
    actual reason ("no known conversion from 'threadgroup float[32]' to 'device float *'").
    """
    out: list[Diagnostic] = []
    last_user_site = None
    for m in _CLANG_DIAGNOSTIC.finditer(stderr):
        file, line, column = m.group("file"), int(m.group("line")), int(m.group("col"))
        user = not file.startswith(include) and file != generated
        if user:
            last_user_site = (file, line)
        message = in_msl_terms(m.group("msg"))
        if m.group("kind") == "note":
            if out and message.startswith("candidate function not viable") and "; " not in out[-1].message:
                d = out[-1]
                out[-1] = Diagnostic(d.file, d.line, f"{d.message}; {message}", d.column)
            continue
        if not user and last_user_site:
            (file, line), column = last_user_site, 0
        out.append(Diagnostic(file, line, "address-space check: " + message, column))
    return out


def in_msl_terms(message: str) -> str:
    for number, name in ((1, "device"), (2, "constant"), (3, "threadgroup")):
        message = message.replace(f"__attribute__((address_space({number})))", name)
        message = message.replace(f"address space '{number}'", f"address space '{name}'")
        message = message.replace(f"address space {number} ", f"address space {name} ")
    for macro, name in (("MTL_AS_DEVICE", "device"), ("MTL_AS_CONSTANT", "constant"),
                        ("MTL_AS_THREADGROUP", "threadgroup")):
        message = message.replace(macro, name)
    return message.replace("generic address space", "address space 'thread'")


def to_checked_cpp(text: str, program: Program) -> str:
    """The translation unit as C++ for clang, with address spaces kept; like to_cpp, edits never move a line."""
    tokens = program.tokens
    edits = Edits(text)

    def span(first: int, last: int) -> tuple[int, int]:
        return tokens[first].start, tokens[last].end

    for n, entry in enumerate(program.entries):  # explicit instantiations: take the address, which instantiates
        if entry.alias_site is None:
            continue
        end = next(e for s, e in program.instantiations if s == entry.alias_site)
        address = entry.address
        if entry.parameter_span is not None:  # deduced template arguments: the signature with address spaces kept
            address = f"static_cast<void(*)({checked_parameter_list(tokens, *entry.parameter_span)})>" \
                      f"(&{entry.cpp_function})"
        edits.replace(*span(entry.alias_site, end), f"inline constexpr auto mtl_entry_fn_{n} = {address};")
    for fc in program.constants.values():  # values do not matter to a syntax check
        type_name = " ".join(w for w in fc.type_text.split() if w != "const")
        edits.replace(*span(*fc.statement), f"static const {type_name} {fc.name} = {type_name}();")
    for first, last in program.duplicate_members:  # overloads by pointer address space stay: clang tells them apart
        edits.replace(*span(first, last), "")
    for name, open_, close in program.array_parameters:  # `constant T a[3]` -> `constant T (*a)`: clang keeps the
        edits.replace(tokens[name].start, tokens[name].end, f"(*{tokens[name].text})")  # space on the pointee
        edits.replace(tokens[open_].start, tokens[close].end, "")
    for var in program.threadgroup_variables:  # `threadgroup T x[N];` in a function: storage of the threadgroup
        refs = []
        for name, suffix in var.declarators:
            full = f"MTL_AS_THREADGROUP {var.type_text}{suffix}"
            ref = f"(&{name}){suffix}" if suffix else f"&{name}"
            refs.append(f"MTL_AS_THREADGROUP {var.type_text} {ref} = ::metal::threadgroup_storage<{full}>();")
        edits.replace(*span(*var.statement), " ".join(refs))
    member_qualifiers = address_space_member_qualifiers(tokens)

    i = 0
    while i < len(tokens):
        t = tokens[i]
        if is_attribute_start(tokens, i):
            close = matching(tokens, i)
            edits.replace(tokens[i].start, tokens[close].end, " ")
            i = close + 1
            continue
        if t.kind == "id":
            if t.text == "kernel":
                edits.replace(t.start, t.end, "")
            elif is_coherence_qualifier(tokens, i):
                edits.replace(t.start, tokens[i + 3].end, "")
                i += 4
                continue
            elif t.text in ADDRESS_SPACES and i in member_qualifiers:
                edits.replace(t.start, t.end, "")  # clang has no address-space-qualified member functions
            elif t.text == "constant":
                edits.replace(t.start, t.end, constant_spelling(tokens, i))
            elif t.text in ADDRESS_SPACES:
                edits.replace(t.start, t.end, _SPACE.get(t.text, ""))
            elif t.text == "is_function_constant_defined" and i + 3 < len(tokens) and tokens[i + 1].text == "(":
                edits.replace(t.start, tokens[i + 3].end, "true")
                i += 4
                continue
            elif _VECTOR_TYPE.fullmatch(t.text) and i + 1 < len(tokens) and tokens[i + 1].text == "(" and (
                    i == 0 or tokens[i - 1].text not in ("::", ".", "->", "operator")):
                edits.replace(t.start, t.end, f"::metal::make_vector<::metal::{t.text}>")
        elif t.kind == "num":
            new = float_literal(t)
            if new is not None and new != t.text:
                edits.replace(t.start, t.end, new)
        i += 1
    return f'#include "{HEADER}"\n' + edits.apply()


def checked_parameter_list(tokens: list[Token], start: int, end: int) -> str:
    """An instantiation's parameter list with attributes dropped and address spaces spelled for clang."""
    out = []
    k = start
    while k < end:
        if is_attribute_start(tokens, k):
            k = matching(tokens, k) + 1
            continue
        t = tokens[k]
        if t.text == "constant":
            out.append("MTL_AS_CONSTANT" if const_beside(tokens, k) else _SPACE["constant"])
        elif t.text in _SPACE:
            out.append(_SPACE[t.text])
        else:
            out.append(t.text)
        k += 1
    return " ".join(w for w in out if w)


def constant_spelling(tokens: list[Token], i: int) -> str:
    """`constant` as a variable with an initializer is a compile-time constant; as a pointee it is address space 2."""
    if is_static_constant_variable(tokens, i):
        return "constexpr"
    near_const = const_beside(tokens, i)
    for x in tokens[i + 1:]:
        if x.text in ("*", "&", "(", ";", "{", ")", ",", "["):
            break  # a pointer, reference or parameter: the address space
        if x.text == "=":
            return "constexpr"  # `constant T name = init;` at program scope
    return "MTL_AS_CONSTANT" if near_const else _SPACE["constant"]


def address_space_member_qualifiers(tokens: list[Token]) -> set[int]:
    """Indices of address-space keywords that qualify a member function (`float get() device const {`)."""
    out: set[int] = set()
    depth = 0
    for k, t in enumerate(tokens):
        depth += t.text == "{"
        depth -= t.text == "}"
        if t.text != ")" or depth == 0:
            continue
        end = k + 1
        while end < len(tokens) and tokens[end].text in ("const", "volatile", "&", "&&", "noexcept", *ADDRESS_SPACES):
            end += 1
        if end < len(tokens) and tokens[end].text in ("{", ";", ":"):  # ':' opens a constructor's initializers
            out.update(j for j in range(k + 1, end) if tokens[j].text in ADDRESS_SPACES)
    return out
