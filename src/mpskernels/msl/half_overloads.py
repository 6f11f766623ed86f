"""Let a `half` argument pick a `float` overload, as it does in MSL.

MLX declares `float log1p(float)`, `bfloat16_t log1p(bfloat16_t)` and `complex64_t log1p(complex64_t)` and calls
`log1p(x)` with a half. For Apple's compiler half -> float is a standard conversion, which beats the user-defined
conversion to complex64_t, so `log1p(float)` is called. In the emulator half is a class: its conversion to float
is user-defined as well, the two tie and the call is ambiguous.

For each namespace-scope function overloaded on one parameter that has a `float` overload and no `half` one, the
emulator adds, right after the first `float` overload, a forwarder

    template <class H, enable_if_t<is_same<H, half>::value, int> = 0> decltype(auto) f(H x) { return f(float(x)); }

It is an exact match for a half argument, so it wins where the float overload is reached only through a
user-defined conversion -- exactly where Apple's compiler picks that overload -- and calls it with the same
converted value. Being a template it loses to any non-template exact match (a user's own `f(half)`); against
another template taking half as it stands, the call is ambiguous, a compile error rather than a different choice.
"""

from __future__ import annotations

from .lexer import Token, matching
from .parse import Declaration

_DROPPED = {"const", "thread", "register"}
_FORWARDER = ("template <class mtl_half_arg, ::std::enable_if_t<::std::is_same<mtl_half_arg, ::half>::value, int> = 0>"
              " {spec}inline decltype(auto) {name}(mtl_half_arg mtl_x) {{ return {name}(float(mtl_x)); }}")


def _split_params(tokens: list[Token], lo: int, hi: int) -> list[list[Token]]:
    """Parameters of the list tokens[lo:hi] (between the parentheses), split at top-level commas."""
    params: list[list[Token]] = [[]]
    depth = 0
    for t in tokens[lo:hi]:
        if t.text in ("(", "[", "{", "<"):
            depth += 1
        elif t.text in (")", "]", "}", ">"):
            depth -= 1
        elif t.text == ">>":
            depth -= 2
        elif t.text == "," and depth == 0:
            params.append([])
            continue
        params[-1].append(t)
    return [p for p in params if p]


def _parameter_kind(param: list[Token]) -> str:
    """'float', 'half' (by value or const reference) or 'other' for one parameter declaration."""
    words = [t.text for t in param]
    if "=" in words:
        words = words[: words.index("=")]  # default argument
    const = "const" in words
    words = [w for w in words if w not in _DROPPED]
    if len(words) >= 2 and param[0].kind == "id" and words[-1] not in ("&", "*") and words[-1] not in ("float", "half"):
        words = words[:-1]  # the parameter's name
    for scalar in ("float", "half"):
        if words == [scalar] or (const and words == [scalar, "&"]):
            return scalar
    return "other"


def _function(tokens: list[Token], decl: Declaration) -> tuple[str, list[list[Token]]] | None:
    """(name, parameters) of a non-template, unqualified namespace-scope function declaration, else None."""
    stop = decl.body[0] if decl.body else decl.end
    if tokens[decl.start].text == "template":
        return None
    j = decl.start
    while j < stop:
        t = tokens[j]
        if t.text in ("typedef", "using", "friend", "operator", "=", "{", "static_assert"):
            return None
        if t.text == "(":
            if j > 0 and tokens[j - 1].text in ("__attribute__", "alignas", "decltype"):
                j = matching(tokens, j) + 1
                continue
            break
        j += 1
    else:
        return None
    name = tokens[j - 1]
    if name.kind != "id" or j - 1 == decl.start or tokens[j - 2].text in ("::", ".", "->", "~"):
        return None
    close = matching(tokens, j)
    if close + 1 != stop:
        return None  # a trailing return type, a qualifier or an initializer: not the plain form this handles
    return name.text, _split_params(tokens, j + 1, close)


def half_forwarders(tokens: list[Token], decls: list[Declaration]) -> list[tuple[int, str]]:
    """(index of the token to insert after, text) for each forwarder the module doc describes."""
    groups: dict[tuple[tuple[str, ...], str], dict[str, list[Declaration]]] = {}
    for decl in decls:
        found = _function(tokens, decl)
        if found is None or len(found[1]) != 1:
            continue
        name, (param,) = found
        groups.setdefault((decl.namespace, name), {}).setdefault(_parameter_kind(param), []).append(decl)
    out = []
    for (_, name), kinds in groups.items():
        if "float" not in kinds or "other" not in kinds or "half" in kinds:
            continue
        first = kinds["float"][0]
        head = {t.text for t in tokens[first.start : first.end]}
        spec = "constexpr " if "constexpr" in head else ""
        out.append((first.end, " " + _FORWARDER.format(spec=spec, name=name)))
    return out
