"""Give each `c ? x : y` the operand types MSL gives it.

In MSL `half` and `bfloat` are arithmetic types: `c ? NAN : h` is a float and `c ? 0 : h` a half, by the usual
arithmetic conversions. In the emulator they are classes that convert implicitly to and from float and the
integers, so C++ finds a conversion each way and refuses the expression. This pass casts each operand to the type
`metal::detail::cond_operand_t` (csrc/emu/mtl/types.h) computes from both operands' types:

    c ? x : y   ->   c ? static_cast<cond_operand_t<decltype((x)), decltype((y))> >((x))
                       : static_cast<cond_operand_t<decltype((y)), decltype((x))> >((y))

For every pair of types but half/bfloat with float or an integer the cast is to the operand's own type
(`decltype((x))`, a reference for an lvalue), so value category and C++'s rules are unchanged. `decltype` does
not evaluate, so each operand still runs once and only on its branch.

Only the operands' extents are needed: `x` runs from `?` to its matching `:`, `y` to the first `,` `;` or closing
bracket outside brackets, or an unmatched `:`. Where the text does not say where `y` ends (a `>` that may close a
template argument list), or an operand holds a lambda (not allowed in `decltype` in C++17) or a directive, the
expression is left as it is: C++ then compiles it with its own rules, which agree with MSL or refuse it.
Works on the C++ text after the main transform; adds no newline, so line markers stay right.
"""

from __future__ import annotations

from .lexer import LexError, Token, matching, tokenize

_OPEN = ("(", "[", "{")
_CLOSE = (")", "]", "}")
_CAST = "static_cast<::metal::detail::cond_operand_t<decltype(({0})), decltype(({1}))> >(({2}))"
# Nested conditionals copy their operands into the outer one's casts (three times each): past this size the outer
# expression is left to C++.
_MAX_OPERAND_CHARS = 4000


def _skip_brackets(tokens: list[Token], j: int) -> int | None:
    try:
        return matching(tokens, j) + 1
    except LexError:
        return None


def _template_close(tokens: list[Token], j: int) -> int | None:
    """Index after the `>` closing a template argument list opened at tokens[j], or None if `<` is a comparison."""
    depth = 0
    k = j
    while k < len(tokens):
        t = tokens[k].text
        if t in _OPEN:
            nxt = _skip_brackets(tokens, k)
            if nxt is None:
                return None
            k = nxt
            continue
        if t in _CLOSE or t in (";", "?", ":", "&&", "||"):
            return None
        if t == "<":
            depth += 1
        elif t == ">":
            depth -= 1
        elif t == ">>":
            depth -= 2
        if depth <= 0:
            return k + 1 if depth == 0 else None
        k += 1
    return None


def _colon(tokens: list[Token], q: int) -> int | None:
    """Index of the `:` that belongs to the `?` at tokens[q]."""
    pending = 0
    j = q + 1
    while j < len(tokens):
        t = tokens[j].text
        if t in _OPEN:
            nxt = _skip_brackets(tokens, j)
            if nxt is None:
                return None
            j = nxt
            continue
        if t in _CLOSE or t == ";":
            return None
        if t == "?":
            pending += 1
        elif t == ":":
            if pending == 0:
                return j
            pending -= 1
        j += 1
    return None


def _end(tokens: list[Token], colon: int) -> int | None:
    """Index just past the last token of the third operand, or None where a `>` leaves that in doubt."""
    pending = 0
    j = colon + 1
    while j < len(tokens):
        tok = tokens[j]
        t = tok.text
        if t in _OPEN:
            nxt = _skip_brackets(tokens, j)
            if nxt is None:
                return None
            j = nxt
            continue
        if t in _CLOSE or t in (";", ","):
            return j
        if t == "?":
            pending += 1
        elif t == ":":
            if pending == 0:
                return j
            pending -= 1
        elif t in (">", ">>"):
            return None  # a comparison, or the end of a template argument list the operand stands in
        elif t == "<" and j > 0 and tokens[j - 1].kind == "id":
            close = _template_close(tokens, j)
            if close is not None:
                j = close
                continue
        j += 1
    return None


def _plain(tokens: list[Token], lo: int, hi: int) -> bool:
    """No lambda introducer and no directive among tokens[lo:hi]."""
    for j in range(lo, hi):
        t = tokens[j]
        if t.kind == "directive":
            return False
        if t.text == "[":
            prev = tokens[j - 1]
            if j == lo or not (prev.kind in ("id", "num", "str") or prev.text in (")", "]")):
                return False  # `[` that does not subscript: a lambda
    return True


def conditionals(tokens: list[Token]) -> dict[int, tuple[int, int]]:
    """`?` index -> (index of its `:`, index past its third operand), for each conditional this pass rewrites."""
    found: dict[int, tuple[int, int]] = {}
    opened: list[int] = []  # indices of the brackets open at each token
    for q, t in enumerate(tokens):
        if t.text in _OPEN:
            opened.append(q)
        elif t.text in _CLOSE and opened:
            opened.pop()
        if t.text != "?":
            continue
        if opened and tokens[opened[-1]].text == "[" and opened[-1] > 0 and tokens[opened[-1] - 1].text == ")":
            # The bound of a parenthesised declarator, `T (&tile)[c ? a : b]` (threadgroup arrays): with the casts
            # clang reads the statement as an expression. The bound is an integer constant anyway.
            continue
        colon = _colon(tokens, q)
        end = None if colon is None else _end(tokens, colon)
        if end is not None and colon > q + 1 and end > colon + 1 and _plain(tokens, q + 1, end):
            found[q] = (colon, end)
    return found


def give_operand_types(text: str) -> str:
    """The C++ text with every conditional expression's operands cast to their MSL types (see the module doc)."""
    if "?" not in text:
        return text
    tokens = tokenize(text)
    found = conditionals(tokens)
    if not found:
        return text

    def render(lo: int, hi: int) -> str:
        """Text of tokens[lo:hi] (with the spaces between them), conditionals inside rewritten."""
        out: list[str] = []
        pos = tokens[lo].start
        j = lo
        while j < hi:
            if j in found and found[j][1] <= hi:
                colon, end = found[j]
                first, second = render(j + 1, colon), render(colon + 1, end)
                if max(len(first), len(second)) <= _MAX_OPERAND_CHARS:
                    a, b = first.replace("\n", " "), second.replace("\n", " ")
                    out.append(text[pos : tokens[j + 1].start])  # up to the operand: keeps its newlines
                    out.append(_CAST.format(a, b, first))
                    out.append(text[tokens[colon - 1].end : tokens[colon + 1].start])
                    out.append(_CAST.format(b, a, second))
                    pos = tokens[end - 1].end
                    j = end
                    continue
            j += 1
        out.append(text[pos : tokens[hi - 1].end])
        return "".join(out)

    return text[: tokens[0].start] + render(0, len(tokens)) + text[tokens[-1].end :]
