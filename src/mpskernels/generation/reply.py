"""Reading a model's reply: the ```metal block and the ```json launch declaration."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)
_METAL_TAGS = {"metal", "msl", "cpp", "c++"}


class ReplyError(ValueError):
    pass


@dataclass(frozen=True)
class Candidate:
    source: str
    declaration: Any  # parsed JSON, checked later by parse_declaration


def parse_reply(text: str) -> Candidate:
    """The last ```metal block and the last ```json block of the reply (a model may show drafts first)."""
    blocks = [(m.group(1).lower(), m.group(2)) for m in _FENCE.finditer(text)]
    metal = [body for tag, body in blocks if tag in _METAL_TAGS]
    declarations = [body for tag, body in blocks if tag == "json"]
    if not metal:
        raise ReplyError("no ```metal code block found; put the whole Metal source in one ```metal block")
    if not declarations:
        raise ReplyError("no ```json code block found; put the launch declaration in one ```json block")
    try:
        declaration = json.loads(declarations[-1])
    except json.JSONDecodeError as e:
        raise ReplyError(f"the ```json block is not valid JSON: {e}") from None
    return Candidate(metal[-1], declaration)
