"""A count of kernel launches, so a verifier can tell a candidate that launched a kernel from one that only
looks as if it did (a kernel written but never dispatched is a known way for generated code to cheat).

Every backend's dispatch calls `record()`; it is one integer increment, cheap enough for the op hot path.
"""

from __future__ import annotations

_launched = 0


def record() -> None:
    global _launched
    _launched += 1


def count() -> int:
    """Launches so far in this process (compare two readings around the code under test)."""
    return _launched
