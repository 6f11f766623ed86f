"""Every use of an address space and every attribute is either modelled or refused -- never silently erased.

The transform erases `device`, `threadgroup` and `thread`, turns `constant` into `const`/`constexpr` and drops
every `[[attribute]]`. That is right only where the construct's meaning survives: a pointer or reference type
(the emulator has one flat memory), a member function's qualifier (overloads merged by the parser), a
statement-level `threadgroup` variable (given storage shared by the threadgroup), a `constant` variable, a kernel
parameter's role. `classify()` names the model of each such token; anything else is an MSLCompileError at its
`.metal` line, so a construct the front end does not understand can never turn into different C++ that compiles.
"""

from __future__ import annotations

from .errors import Diagnostic, MSLCompileError
from .lexer import Token, matching
from .scopes import CLASS, FUNCTION, NAMESPACE, scope_kinds, statement_start

CHECKED_SPACES = ("device", "constant", "threadgroup")
UNSUPPORTED_SPACES = ("threadgroup_imageblock", "ray_data", "object_data")

# Attributes with no meaning the emulator would lose by dropping them (standard C++ and compiler hints).
NEUTRAL_ATTRIBUTES = {
    "maybe_unused", "likely", "unlikely", "fallthrough", "nodiscard", "noreturn", "deprecated", "carries_dependency",
}  # fmt: skip
NEUTRAL_ATTRIBUTE_PREFIXES = ("clang::", "gnu::")

# Model names, recorded per token index.
POINTER = "pointer or reference type"
ARRAY_PARAMETER = "array parameter (a pointer)"
MEMBER_QUALIFIER = "member function qualifier"
THREADGROUP_VARIABLE = "threadgroup variable"
CONSTANT_VARIABLE = "constant variable"
COHERENCE_SCOPE = "coherence scope of coherent(...)"


def error(tok: Token, message: str) -> MSLCompileError:
    return MSLCompileError(Diagnostic(tok.file, tok.line, message))


def classify_address_spaces(tokens: list[Token], attribute_spans: list[tuple[int, int]],
                            threadgroup_starts: set[int], function_constant_starts: set[int]) -> dict[int, str]:
    """Token index -> model for every address-space keyword outside attributes; raises on one it cannot model."""
    inside_attribute = set()
    for s, e in attribute_spans:
        inside_attribute.update(range(s, e + 1))
    scopes = scope_kinds(tokens)
    out: dict[int, str] = {}
    for i, t in enumerate(tokens):
        if t.kind != "id" or i in inside_attribute:
            continue
        if t.text in UNSUPPORTED_SPACES:
            raise error(t, f"'{t.text}' memory is not supported by the emulator (compute kernels only)")
        if t.text not in CHECKED_SPACES:
            continue
        if i > 0 and tokens[i - 1].text in ("::", ".", "->"):
            continue  # a member or qualified name (`mem_flags::...`), not the keyword
        if i > 1 and tokens[i - 1].text == "(" and tokens[i - 2].text == "coherent":
            out[i] = COHERENCE_SCOPE
            continue
        out[i] = model_of(tokens, i, scopes[i], threadgroup_starts, function_constant_starts)
    return out


def model_of(tokens: list[Token], i: int, scope: str, threadgroup_starts: set[int],
             function_constant_starts: set[int]) -> str:
    t = tokens[i]
    if is_member_qualifier(tokens, i):
        return MEMBER_QUALIFIER
    kind = indirection_after(tokens, i)
    if kind is not None:
        return kind
    start = statement_start(tokens, i)
    in_brackets = start > 0 and tokens[start - 1].text in ("(", "[")
    if in_brackets or inside_template_arguments(tokens, start, i):
        raise error(t, f"'{t.text}' on a type that is not a pointer or reference (a value, cast or template "
                       f"argument): the emulator cannot keep this address space; use a pointer or reference")
    if t.text == "threadgroup":
        if start in threadgroup_starts and scope == FUNCTION:
            return THREADGROUP_VARIABLE
        where = {NAMESPACE: "at program scope", CLASS: "as a class member"}.get(scope, "here")
        raise error(t, f"a threadgroup variable {where}: MSL allows threadgroup variables only as declarations of "
                       f"their own inside a function (`threadgroup T name[N];`), and pointers or references to "
                       f"threadgroup memory")
    if t.text == "constant":
        if start in function_constant_starts or is_variable_declaration(tokens, start, i):
            return CONSTANT_VARIABLE
        raise error(t, "'constant' here is neither a variable declaration nor a pointer or reference type")
    raise error(t, "'device' applies to pointers and references only: a variable cannot live in the device "
                   "address space")


def is_member_qualifier(tokens: list[Token], i: int) -> bool:
    """`float get() const device {` -- the keyword follows a parameter list among other qualifiers."""
    j = i - 1
    while j >= 0 and tokens[j].text in ("const", "volatile", *CHECKED_SPACES, "thread"):
        j -= 1
    if j < 0 or tokens[j].text != ")":
        return False
    k = i + 1
    while k < len(tokens) and tokens[k].text in ("const", "volatile", "&", "&&", "noexcept", *CHECKED_SPACES,
                                                  "thread"):
        k += 1
    return k < len(tokens) and tokens[k].text in ("{", ";", "=", "->", ":", "override", "final")


def indirection_after(tokens: list[Token], i: int) -> str | None:
    """POINTER if a `*`, `&` or `&&` follows the keyword before its declarator ends; ARRAY_PARAMETER for
    `constant T name[N]` in a parameter list; None for a value type."""
    k = i + 1
    n = len(tokens)
    while k < n:
        x = tokens[k].text
        if x in ("*", "&", "&&"):
            return POINTER
        if x == "<":
            try:
                k = matching(tokens, k) + 1
                continue
            except ValueError:
                return None
        if x == "(":
            return POINTER if k + 1 < n and tokens[k + 1].text in ("*", "&", "&&") else None
        if x == "[" and k > i + 1 and tokens[k - 1].kind == "id":
            start = statement_start(tokens, i)
            if start > 0 and tokens[start - 1].text == "(" and tokens[k - 1].text != "operator":
                return ARRAY_PARAMETER
            return None
        if x in (",", ";", ")", ">", "=", "{", "}", "[", ":", "..."):
            return None
        k += 1
    return None


def inside_template_arguments(tokens: list[Token], start: int, i: int) -> bool:
    depth = 0
    for k in range(start, i):
        if tokens[k].text == "<":
            depth += 1
        elif tokens[k].text == ">" and depth:
            depth -= 1
        elif tokens[k].text == ">>" and depth:
            depth = max(0, depth - 2)
    return depth > 0


def is_variable_declaration(tokens: list[Token], start: int, i: int) -> bool:
    """`[static] [constexpr] constant [constexpr] T name = ...;` (or `name[N] = {...}` / `name{...}`)."""
    if tokens[start].text == "template" and start + 1 < i and tokens[start + 1].text == "<":
        start = matching(tokens, start + 1) + 1  # a variable template
    if tokens[start].text in ("typedef", "using", "return", "template", "friend"):
        return False
    depth = 0
    for k in range(i + 1, len(tokens)):
        x = tokens[k].text
        if x == "<":
            depth += 1
        elif x in (">", ">>") and depth:
            depth -= 1 if x == ">" else min(depth, 2)
        elif depth == 0 and x == "=" and k > i + 1:
            return True
        elif depth == 0 and x in ("{", "[", ";", "(") and tokens[k - 1].kind == "id" and k > i + 2:
            return True  # `constant T name{..}`, `name[N]`, `name;`, `name(args)` (direct initialization)
        elif depth == 0 and x in ("(", ")", ",", "}"):
            return False
    return False


def check_attributes(tokens: list[Token], attributes, allowed_at: dict[int, set[str]],
                     parameter_attributes: set[str]) -> None:
    """Every attribute list either sits where the parser reads it (allowed_at: its start -> names it may hold)
    or holds only neutral attributes; anything else is refused at its line. On the parameters of functions other
    than kernels (helpers, constructors, explicit instantiations), Metal gives the parameter attributes
    (`[[buffer(n)]]`, builtins) no meaning: they stay ordinary arguments, as in the emulator."""
    for a in attributes:
        allowed = allowed_at.get(a.start, set())
        if a.name in allowed or a.name in NEUTRAL_ATTRIBUTES or a.name.startswith(NEUTRAL_ATTRIBUTE_PREFIXES):
            continue
        start = statement_start(tokens, a.start)
        if a.name in parameter_attributes and start > 0 and tokens[start - 1].text == "(":
            continue
        tok = a.name_token
        where = "here" if a.start not in allowed_at else "on this declaration"
        raise error(tok, f"[[{a.name}]] {where} is not modelled by the emulator; it refuses it rather than drop it")
