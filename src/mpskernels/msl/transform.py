"""Turn a parsed Metal translation unit into C++ for the CPU emulator.

Edits are made in place on the preprocessed text and never add or remove a newline, so the line markers the
preprocessor left keep pointing at the right `.metal` lines and the C++ compiler reports errors there. What the
emulator adds (the kernel registry) goes after the source, under its own file name.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable

from .conditional import give_operand_types
from .errors import Diagnostic, MSLCompileError
from .half_overloads import half_forwarders
from .lexer import Token
from .lexer import matching
from .parse import ADDRESS_SPACES, BUILTINS, FunctionConstant, Program, is_attribute_start, split_declarations

ROLE_CODES = {"buffer": "::mtl::kRoleBuffer", "threadgroup": "::mtl::kRoleThreadgroup", "builtin": "::mtl::kRoleBuiltin"}
# thread_index_in_simdgroup -> ::mtl::kThreadIndexInSimdgroup (the runtime's Builtin enum)
BUILTIN_CODES = {name: "::mtl::k" + "".join(w.title() for w in name.split("_")) for name in BUILTINS}

_INT_TYPES = {
    "bool", "char", "uchar", "short", "ushort", "int", "uint", "long", "ulong", "size_t",
    "int8_t", "uint8_t", "int16_t", "uint16_t", "int32_t", "uint32_t", "int64_t", "uint64_t",
}  # fmt: skip
_FLOAT_TYPES = {"float", "half", "bfloat"}

_FLOAT_LITERAL = re.compile(
    r"(?P<body>(?:0[xX](?:[0-9a-fA-F']*\.?[0-9a-fA-F']*)[pP][+-]?[0-9]+"
    r"|(?:[0-9']*\.[0-9']*|[0-9']+)(?:[eE][+-]?[0-9]+)?))(?P<suffix>[a-zA-Z]*)"
)


@dataclass(frozen=True)
class Specialization:
    """Function-constant values for one compile; names absent from `values` are undefined."""

    values: tuple[tuple[str, object], ...] = ()

    @classmethod
    def of(cls, values: dict[str, object] | None) -> "Specialization":
        return cls(tuple(sorted((values or {}).items())))


class Edits:
    def __init__(self, text: str):
        self.text = text
        self.edits: list[tuple[int, int, str]] = []

    def replace(self, start: int, end: int, new: str) -> None:
        old = self.text[start:end]
        # Keep every newline, so later tokens stay on their lines.
        self.edits.append((start, end, new + "\n" * old.count("\n")))

    def apply(self) -> str:
        out = []
        pos = 0
        # Wider edits first at equal starts: a statement replaced whole swallows the token edits inside it.
        for start, end, new in sorted(self.edits, key=lambda e: (e[0], -e[1])):
            if start < pos:
                continue  # inside a region an earlier (wider) edit already replaced
            out.append(self.text[pos:start])
            out.append(new)
            pos = end
        out.append(self.text[pos:])
        return "".join(out)


def float_literal(tok: Token) -> str | None:
    """C++ spelling of an MSL floating literal (float unless suffixed h), or None for integer literals."""
    text = tok.text
    lower = text.lower()
    if lower.startswith("0x"):
        if "p" not in lower:
            return None
    elif not any(c in lower for c in ".e"):
        return None
    m = _FLOAT_LITERAL.fullmatch(text)
    if not m:
        return None
    body, suffix = m.group("body"), m.group("suffix").lower()
    if suffix in ("f",):
        return text
    if suffix == "":
        return body + "f"
    if suffix == "h":
        return f"half({body}f)"
    if suffix in ("bf",):
        return f"bfloat({body}f)"
    raise MSLCompileError(Diagnostic(tok.file, tok.line, f"floating literal '{text}': MSL has no double precision"))


def constant_initializer(fc: FunctionConstant, value: object) -> str:
    type_name = " ".join(w for w in fc.type_text.split() if w != "const")
    if type_name == "bool":
        return "true" if value else "false"
    if type_name in _INT_TYPES:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"function constant '{fc.name}' is {type_name}: give an int, not {value!r}")
        return f"{type_name}({value}LL)" if value < 0 else f"{type_name}({value}ULL)"
    if type_name in _FLOAT_TYPES:
        v = float(value)
        if math.isnan(v):
            lit = "__builtin_nanf(\"\")"
        elif math.isinf(v):
            lit = "__builtin_inff()" if v > 0 else "-__builtin_inff()"
        else:
            lit = v.hex() + "f"
        return f"{type_name}({lit})"
    raise MSLCompileError(
        Diagnostic(fc.file, fc.line, f"function constant '{fc.name}' has type '{fc.type_text}'; the emulator "
                                     f"supports bool, integer and floating scalar constants")
    )


def is_static_constant_variable(tokens: list[Token], i: int) -> bool:
    """Whether tokens[i] (`constant`) is in a `static [const] constant T name = init;` variable declaration.

    MSL accepts such class members with non-integral types (MLX: `static const constant U max = ...;` in a
    struct), which C++ allows only as constexpr. Declarations that already say constexpr, and functions, are left
    alone.
    """
    k = i
    while k > 0 and tokens[k - 1].text not in (";", "{", "}", ":"):
        k -= 1
    head = {x.text for x in tokens[k:i]}
    if "static" not in head or "constexpr" in head:
        return False
    for x in tokens[i + 1 :]:
        if x.text == "=":
            return True
        if x.text in ("(", "constexpr", ";", "{", "}"):
            return False  # a function returning a constant reference or pointer, or no initializer
    return False


_SPECIFIERS = {"static", "constexpr", "const", "inline", "volatile", *ADDRESS_SPACES}


def const_beside(tokens: list[Token], i: int) -> bool:
    """Whether the specifiers around tokens[i] already say const (`const constant T*`, `constant T const`... and
    `static constant constexpr const T`), so `constant` must not add a second one."""
    k = i - 1
    while k >= 0 and tokens[k].text in _SPECIFIERS:
        if tokens[k].text == "const":
            return True
        k -= 1
    k = i + 1
    while k < len(tokens) and tokens[k].text in _SPECIFIERS:
        if tokens[k].text == "const":
            return True
        k += 1
    return False


def fold_defined_query(edits: Edits, program: Program, values: dict, i: int) -> bool:
    """Replaces `is_function_constant_defined(name)` at tokens[i] by true/false for this specialisation."""
    tokens = program.tokens
    t = tokens[i]
    if t.text != "is_function_constant_defined" or i + 3 >= len(tokens) or tokens[i + 1].text != "(":
        return False
    name = tokens[i + 2].text
    if name not in program.constants:
        raise MSLCompileError(Diagnostic(t.file, t.line, f"'{name}' is not a function constant"))
    edits.replace(t.start, tokens[i + 3].end, "true" if name in values else "false")
    return True


def is_coherence_qualifier(tokens: list[Token], i: int) -> bool:
    """`coherent(system)` / `coherent(device)` before an address space (MSL 3.2 memory coherence)."""
    return (tokens[i].text == "coherent" and i + 4 < len(tokens) and tokens[i + 1].text == "(" and
            tokens[i + 2].text in ("system", "device") and tokens[i + 3].text == ")" and
            tokens[i + 4].text in ADDRESS_SPACES)


def rewrite_tokens(edits: Edits, program: Program, values: dict, identifier: Callable[[int], str | None],
                   number: Callable[[str], str] = lambda text: text) -> None:
    """The token walk every target of the transform shares (the emulator's C++, the NVIDIA lane's CUDA): attribute
    lists dropped, `kernel` and `coherent(...)` erased, is_function_constant_defined folded, float literals in C++ spelling (passed
    through `number`). `identifier(i)` gives the target's replacement for any other identifier at tokens[i], or
    None to leave it."""
    tokens = program.tokens
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
                # `coherent(system) device T*`: both targets' memory is coherent for what the emulator runs
                edits.replace(t.start, tokens[i + 3].end, "")
                i += 4
                continue
            elif fold_defined_query(edits, program, values, i):
                i += 4
                continue
            else:
                replacement = identifier(i)
                if replacement is not None:
                    edits.replace(t.start, t.end, replacement)
        elif t.kind == "num":
            new = float_literal(t)
            if new is not None and new != t.text:
                edits.replace(t.start, t.end, number(new))
        i += 1


def to_cpp(text: str, program: Program, spec: Specialization, shim_header: str) -> str:
    tokens = program.tokens
    edits = Edits(text)
    values = dict(spec.values)
    unknown = set(values) - set(program.constants)
    if unknown:
        raise ValueError(f"unknown function constant(s): {', '.join(sorted(unknown))}")

    def span(first: int, last: int) -> tuple[int, int]:
        return tokens[first].start, tokens[last].end

    # Whole statements first: instantiations, function constants, threadgroup variables.
    alias_of: dict[int, str] = {}
    for n, entry in enumerate(program.entries):
        if entry.alias_site is None:
            continue
        end = next(e for s, e in program.instantiations if s == entry.alias_site)
        name = f"mtl_entry_fn_{n}"
        alias_of[n] = "::".join((*entry.namespace, name))
        edits.replace(*span(entry.alias_site, end), f"inline constexpr auto {name} = {entry.address};")

    for fc in program.constants.values():
        type_name = " ".join(w for w in fc.type_text.split() if w != "const")
        keyword = "constexpr" if type_name in _INT_TYPES else "const"
        if fc.name in values:
            init = constant_initializer(fc, values[fc.name])
        else:
            init = f"{type_name}()"  # undefined: reads as zero; is_function_constant_defined says false
        edits.replace(*span(*fc.statement), f"static {keyword} {type_name} {fc.name} = {init};")

    for first, last in program.duplicate_members + program.duplicate_overloads:
        edits.replace(*span(first, last), "")

    site = 0  # one storage site per declarator: `threadgroup float a[8], b[8];` declares two arrays
    for var in program.threadgroup_variables:
        parts = []
        for name, suffix in var.declarators:
            full = f"{var.type_text}{suffix}"
            ref = f"(&{name}){suffix}" if suffix else f"&{name}"
            parts.append(f"{var.type_text} {ref} = *::mtl::tg_alloc<{full}>({site}, __FILE__, __LINE__);")
            site += 1
        edits.replace(*span(*var.statement), " ".join(parts))

    # `f(half)` picks `f(float)` over `f(complex64_t)`, as in MSL (half_overloads.py)
    for after, forwarder in half_forwarders(tokens, split_declarations(tokens)):
        edits.replace(tokens[after].end, tokens[after].end, forwarder)

    constructor_qualifiers = set(program.constructor_qualifiers)

    def identifier(i: int) -> str | None:
        t = tokens[i]
        if t.text == "constant":
            if is_static_constant_variable(tokens, i):
                return "constexpr"
            return "" if const_beside(tokens, i) or i in constructor_qualifiers else "const"
        if t.text in ADDRESS_SPACES and i not in program.address_space_models and t.text != "thread" and (
                i == 0 or tokens[i - 1].text not in ("::", ".", "->")):
            raise MSLCompileError(Diagnostic(t.file, t.line, f"internal: '{t.text}' reached the transform "
                                                             f"without a model (coverage.py)"))
        return "" if t.text in ADDRESS_SPACES else None

    rewrite_tokens(edits, program, values, identifier)
    body = give_operand_types(edits.apply())  # `c ? NAN : h` is a float, as in MSL (conditional.py)
    header = f'#include "{shim_header}"\n#pragma GCC poison double\n'
    return header + body + registry(program, alias_of)


def registry(program: Program, alias_of: dict[int, str]) -> str:
    lines = ['', '#line 1 "<mpskernels emulator registry>"', "namespace mtl_registry {"]
    entries = []
    describe = []
    for n, entry in enumerate(program.entries):
        fn = alias_of.get(n, f"&{entry.kernel.qualified_name}")
        params = entry.kernel.params
        rows = ", ".join(
            f"{{{ROLE_CODES[p.role]}, {BUILTIN_CODES[p.builtin] if p.role == 'builtin' else p.index}, 0, 0, 0}}"
            for p in params
        ) or "{0, 0, 0, 0, 0}"
        lines.append(f"static const ::mtl::ParamInfo params_{n}[] = {{{rows}}};")
        lines.append(f"static void lane_{n}(::mtl::Lane& lane) {{ ::mtl::call_kernel({fn}, lane, params_{n}); }}")
        uses_fibers = 1 if entry.kernel.uses_sync else 0
        entries.append(f'{{"{entry.host_name}", "{entry.kernel.name}", &lane_{n}, params_{n}, {len(params)}, '
                       f'{uses_fibers}}}')
        describe.append(
            f"    case {n}: for (int k = 0; k < {len(params)}; ++k) out[k] = mtl_registry::params_{n}[k]; "
            f"::mtl::describe_params({fn}, out); return {len(params)};"
        )
    lines.append(f"static const ::mtl::Entry entries[] = {{{', '.join(entries) or '{}'}}};")
    lines.append(f"constexpr int num_entries = {len(program.entries)};")
    lines.append("}  // namespace mtl_registry")
    lines.append('#define MTL_EXPORT extern "C" __attribute__((visibility("default")))')
    lines.append("MTL_EXPORT int mtl_entry_count() { return mtl_registry::num_entries; }")
    lines.append("MTL_EXPORT const char* mtl_entry_name(int i) { return mtl_registry::entries[i].host_name; }")
    lines.append("MTL_EXPORT int mtl_describe_params(int i, ::mtl::ParamInfo* out) {")
    lines.append("  switch (i) {")
    lines.extend(describe)
    lines.append("  }")
    lines.append("  return -1;")
    lines.append("}")
    lines.append("MTL_EXPORT int mtl_dispatch(int i, ::mtl::DispatchArgs* args) {")
    lines.append("  if (i < 0 || i >= mtl_registry::num_entries) return -1;")
    lines.append("  return ::mtl::dispatch(mtl_registry::entries[i], args);")
    lines.append("}")
    lines.append("MTL_EXPORT const char* mtl_fiber_implementation() { return ::mtl::fiber::implementation(); }")
    return "\n".join(lines) + "\n"
