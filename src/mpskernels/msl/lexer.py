"""Tokens of preprocessed MSL source, with their .metal file and line.

The input is C preprocessor output: ``# LINE "FILE"`` markers tell which source line each token came from, so
every diagnostic can name the ``.metal`` file and line. Tokens keep their character offsets: the transform edits
the text in place, which keeps every token on its original line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Longest punctuators first. `[[` and `]]` are left as two `[` / `]` tokens: `a[b[i]]` ends in `]]` too.
_PUNCTUATORS = sorted(
    """<<= >>= ... -> ++ -- << >> <= >= == != && || += -= *= /= %= &= |= ^= :: ##
    { } [ ] ( ) ; : ? , . + - * / % & | ^ ~ ! = < > #""".split(),
    key=len,
    reverse=True,
)

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>[ \t\r\f\v]+|\\\n)
  | (?P<nl>\n)
  | (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<str>(?:u8|u|U|L)?"(?:\\.|[^"\\\n])*")
  | (?P<char>(?:u8|u|U|L)?'(?:\\.|[^'\\\n])*')
  | (?P<num>\.?[0-9](?:[eEpP][+-]|[0-9a-zA-Z_.'])*)
  | (?P<id>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>"""
    + "|".join(re.escape(p) for p in _PUNCTUATORS)
    + r""")
    """,
    re.VERBOSE | re.DOTALL,
)

_DIRECTIVE_START_RE = re.compile(r"[ \t]*#")
_LINE_MARKER_RE = re.compile(r'#\s*(?:line\s+)?(\d+)(?:\s+"((?:\\.|[^"\\])*)")?[^\n]*')


@dataclass(frozen=True)
class Token:
    kind: str  # id, num, str, char, punct, directive
    text: str
    start: int  # offset in the preprocessed text
    end: int
    file: str
    line: int

    def is_(self, text: str) -> bool:
        return self.text == text

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


class LexError(ValueError):
    pass


def tokenize(text: str, default_file: str = "<source>") -> list[Token]:
    """Split preprocessed text into tokens; directives (line markers, pragmas) become single tokens."""
    tokens: list[Token] = []
    pos = 0
    file, line = default_file, 1
    at_line_start = True
    n = len(text)
    while pos < n:
        if at_line_start:
            m = _DIRECTIVE_START_RE.match(text, pos)
            if m:
                end = text.find("\n", pos)
                end = n if end < 0 else end
                directive = text[pos:end].strip()
                marker = _LINE_MARKER_RE.fullmatch(directive)
                if marker:
                    line = int(marker.group(1))
                    if marker.group(2) is not None:
                        file = marker.group(2).encode().decode("unicode_escape")
                    pos = end + 1 if end < n else end
                    # The marker names the line that *follows* it.
                    continue
                tokens.append(Token("directive", directive, pos, end, file, line))
                pos = end
                continue
        m = _TOKEN_RE.match(text, pos)
        if not m:
            raise LexError(f"{file}:{line}: cannot read source text starting {text[pos:pos + 20]!r}")
        kind = m.lastgroup
        value = m.group()
        if kind == "nl":
            line += 1
            at_line_start = True
        elif kind in ("ws",):
            if value == "\\\n":
                line += 1
        elif kind == "comment":
            line += value.count("\n")
            if value.count("\n"):
                at_line_start = False
        else:
            tokens.append(Token(kind, value, m.start(), m.end(), file, line))
            at_line_start = False
        pos = m.end()
    return tokens


def matching(tokens: list[Token], i: int) -> int:
    """Index of the bracket closing the one at tokens[i] ((, [, {, or < as a template bracket)."""
    open_ = tokens[i].text
    close = {"(": ")", "[": "]", "{": "}", "<": ">"}[open_]
    depth = 0
    j = i
    while j < len(tokens):
        t = tokens[j].text
        if open_ == "<":
            # Template brackets: count only < and > outside nested (), [] and {}.
            if t in ("(", "[", "{"):
                j = matching(tokens, j) + 1
                continue
            if t == ">>":
                depth -= 2
                if depth <= 0:
                    return j
                j += 1
                continue
        if t == open_:
            depth += 1
        elif t == close:
            depth -= 1
            if depth == 0:
                return j
        elif open_ == "<" and t in (";", "{", "}"):
            break
        j += 1
    raise LexError(f"{tokens[i].where}: unbalanced '{open_}'")
