"""Integer constant expressions in attribute arguments: `[[function_constant(FC_BASE + 1)]]` (after the
preprocessor: `100 + 1`), `[[max_total_threads_per_threadgroup(BM * BN * 32)]]` with the template arguments of
one instantiation, `[[buffer(N + 2)]]`.

C++ integer arithmetic on literals and names given in `env` (template arguments, program-scope integer
constants); anything else -- a function call, `sizeof`, a member -- is not evaluated: NotConstant is raised and
the caller reports it at the attribute's line.
"""

from __future__ import annotations

import re

from .lexer import Token

_INT = re.compile(r"(0[xX][0-9a-fA-F']+|0[bB][01']+|0[0-7']*|[1-9][0-9']*)([uUlL]*)")

# Binary operators by precedence, lowest first (C++'s order); ?: is handled above them.
_BINARY = [
    ("||",), ("&&",), ("|",), ("^",), ("&",), ("==", "!="), ("<", "<=", ">", ">="), ("<<", ">>"),
    ("+", "-"), ("*", "/", "%"),
]  # fmt: skip


class NotConstant(ValueError):
    pass


def evaluate(tokens: list[Token] | tuple[Token, ...], env: dict[str, int] | None = None) -> int:
    """The value of an integer constant expression; NotConstant if it is not one the front end can fold."""
    parser = _Parser(list(tokens), env or {})
    value = parser.conditional()
    if parser.k != len(parser.tokens):
        raise NotConstant(f"unexpected '{parser.tokens[parser.k].text}'")
    return value


def int_literal(text: str) -> int:
    m = _INT.fullmatch(text)
    if not m:
        raise NotConstant(f"'{text}' is not an integer literal")
    digits = m.group(1).replace("'", "")
    if len(digits) > 1 and digits[0] == "0" and digits[1] not in "xXbB":
        return int(digits, 8)
    return int(digits, 0)


class _Parser:
    def __init__(self, tokens: list[Token], env: dict[str, int]):
        self.tokens = tokens
        self.env = env
        self.k = 0

    def peek(self) -> str | None:
        return self.tokens[self.k].text if self.k < len(self.tokens) else None

    def take(self, text: str) -> None:
        if self.peek() != text:
            raise NotConstant(f"expected '{text}'")
        self.k += 1

    def conditional(self) -> int:
        cond = self.binary(0)
        if self.peek() != "?":
            return cond
        self.k += 1
        a = self.conditional()
        self.take(":")
        b = self.conditional()
        return a if cond else b

    def binary(self, level: int) -> int:
        if level == len(_BINARY):
            return self.unary()
        left = self.binary(level + 1)
        while self.peek() in _BINARY[level]:
            op = self.tokens[self.k].text
            self.k += 1
            left = _apply(op, left, self.binary(level + 1))
        return left

    def unary(self) -> int:
        op = self.peek()
        if op in ("-", "+", "!", "~"):
            self.k += 1
            v = self.unary()
            return {"-": -v, "+": v, "!": int(not v), "~": ~v}[op]
        if op == "(":
            self.k += 1
            v = self.conditional()
            self.take(")")
            return v
        if op is None:
            raise NotConstant("expression ends early")
        tok = self.tokens[self.k]
        self.k += 1
        if tok.kind == "num":
            return int_literal(tok.text)
        if tok.text in ("true", "false"):
            return int(tok.text == "true")
        if tok.kind == "id" and tok.text in self.env:
            return self.env[tok.text]
        raise NotConstant(f"'{tok.text}' is not a constant the front end knows")


def _apply(op: str, a: int, b: int) -> int:
    if op in ("/", "%"):
        if b == 0:
            raise NotConstant("division by zero")
        q = abs(a) // abs(b) * (1 if (a >= 0) == (b >= 0) else -1)  # C++ truncates toward zero
        return q if op == "/" else a - q * b
    return {
        "||": lambda: int(bool(a) or bool(b)), "&&": lambda: int(bool(a) and bool(b)), "|": lambda: a | b,
        "^": lambda: a ^ b, "&": lambda: a & b, "==": lambda: int(a == b), "!=": lambda: int(a != b),
        "<": lambda: int(a < b), "<=": lambda: int(a <= b), ">": lambda: int(a > b), ">=": lambda: int(a >= b),
        "<<": lambda: a << b, ">>": lambda: a >> b, "+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b,
    }[op]()  # fmt: skip
