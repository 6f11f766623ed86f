"""What moves through optimize()'s stages: candidates (modules with proposed replacements), then swaps (one chosen
replacement each) that collect what every later stage found out about them, until the report takes them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .fusions import PairFusion
from .matchers import Replacement


@dataclass
class Candidate:
    """A module and the replacements proposed for it, in order of preference (the first that passes wins)."""

    name: str
    module: nn.Module
    proposals: list[Replacement] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # why proposals were ruled out (config, routing)
    refusal: str = ""  # why the module cannot be swapped at all (a matcher's answer)
    unrecognised: str = ""  # a user module nothing proposed anything for: what was looked for


@dataclass
class Call:
    """A module's first call on the example inputs: its inputs (copied before the call: tensors cloned, other
    objects such as a KV cache deep-copied, so a replay sees what the module saw) and its output."""

    args: tuple | None
    kwargs: dict | None
    output: Any = None
    replayed: Any = None  # the replacement's output, for calls replayed at once
    launches: int = 0  # kernel launches made by the replay
    no_launch: str = ""  # why the replay launched no kernel
    unsupported: str | None = None  # why the kernels cannot take these inputs (float64, meta, mixed dtypes)


@dataclass
class Swap:
    """One chosen replacement on its way to being installed, with what the stages found."""

    name: str
    module: nn.Module
    replacement: Replacement
    fusion: PairFusion | None = None  # a fusion: `module` is its first module, `partner` the one folded into it
    partner: nn.Module | None = None
    call: Call | None = None
    partner_call: Call | None = None
    checked: str = ""  # the check's result on the example inputs, or why there was none
    routes: str = ""  # what a routed forward routed
    max_abs: float | None = None
    launches: int | None = None  # kernel launches while checking (None: not counted, e.g. a PyTorch-only fusion)
    backend: str | None = None  # the backend that ran the kernel
    timing: Any = None  # timing.Decision, or None when not timed
    timing_note: str = ""  # why not timed, or where the decision came from

    @property
    def module_type(self) -> str:
        return type(self.module).__name__
