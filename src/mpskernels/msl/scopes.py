"""Which kind of scope each token stands in: namespace, class body, function body or braced initializer.

The front end reads tokens, not a C++ syntax tree, so it decides this from the tokens before each `{`: a
namespace or `extern "C"` head, a class/struct/union/enum head, a function head (its parameter list and
qualifiers), a statement block inside a function, or anything else -- a braced initializer.
"""

from __future__ import annotations

from .lexer import Token

NAMESPACE, CLASS, FUNCTION, INIT = "namespace", "class", "function", "init"

_BLOCK_AFTER = {")", "else", "do", ";", "{", "}", ":", "]", "try"}
_CLASS_KEYS = {"struct", "class", "union"}


def scope_kinds(tokens: list[Token]) -> list[str]:
    """For each token, the kind of the innermost brace pair around it (NAMESPACE outside all braces)."""
    out: list[str] = []
    stack: list[str] = []
    for k, t in enumerate(tokens):
        out.append(stack[-1] if stack else NAMESPACE)
        if t.text == "{":
            stack.append(_opened_by(tokens, k, stack[-1] if stack else NAMESPACE))
        elif t.text == "}" and stack:
            stack.pop()
    return out


def statement_start(tokens: list[Token], k: int) -> int:
    """Index of the first token of the statement or declaration that holds tokens[k] (same brace level)."""
    depth = 0
    j = k - 1
    while j >= 0:
        t = tokens[j].text
        if t in (")", "]"):
            depth += 1
        elif t in ("(", "["):
            if depth == 0:
                return j + 1  # inside a parameter list, call or subscript: starts after the bracket
            depth -= 1
        elif depth == 0 and (t in (";", "{", "}") or tokens[j].kind == "directive"):
            return j + 1
        j -= 1
    return 0


def _opened_by(tokens: list[Token], k: int, parent: str) -> str:
    prev = tokens[k - 1] if k > 0 else None
    if parent == INIT:
        return INIT
    if parent == FUNCTION:
        if prev is None or prev.text in _BLOCK_AFTER or prev.kind == "directive":
            return FUNCTION  # if/for/while/switch/lambda body, else/do block, nested block
        return INIT  # `T x{...}`, `= {...}`, `f({...})`, `return {...}`
    head = [t.text for t in tokens[statement_start(tokens, k) : k]]
    if head[:1] == ["namespace"] or head[:2] == ["inline", "namespace"]:
        return NAMESPACE
    if head[:1] == ["extern"] and len(head) == 2:
        return NAMESPACE
    if _is_function_body(tokens, k):
        return FUNCTION
    if "enum" in head:
        return INIT
    if _CLASS_KEYS & set(_outside_brackets(head)) and "=" not in head:
        return CLASS
    return INIT


def _outside_brackets(words: list[str]) -> list[str]:
    out, depth = [], 0
    for w in words:
        if w in ("(", "[", "<"):
            depth += 1
        elif w in (")", "]", ">") and depth:
            depth -= 1
        elif depth == 0:
            out.append(w)
    return out


_QUALIFIERS = {"const", "volatile", "noexcept", "override", "final", "&", "&&", "device", "constant", "thread",
               "threadgroup", "threadgroup_imageblock"}


def _is_function_body(tokens: list[Token], k: int) -> bool:
    """Whether the `{` at tokens[k] opens a function body (after `(...) qualifiers`, `-> type` or a
    constructor's member initializer list)."""
    j = k - 1
    while j >= 0 and tokens[j].text in _QUALIFIERS:
        j -= 1
    if j >= 0 and tokens[j].text == ")":
        return True
    # `S() : a(0), b{1} {` -- the body follows a member initializer's `)` or `}`; `-> T {` a trailing type
    start = statement_start(tokens, k)
    words = [t.text for t in tokens[start:k]]
    if "->" in words and "(" in words:
        return True
    return False
