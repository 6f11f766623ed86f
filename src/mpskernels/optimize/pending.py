"""The hand-over between a fused residual add and its partner RMSNorm (decoder.py): the norm the add computed in
the same launch, kept until the partner norm module is called with that very sum. A module of its own, with no
imports from this package's stages, so that the rms_norm replacements in matchers.py and handwritten.py can use it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import torch
from torch import nn

from .. import ops


@dataclass
class Pending:
    source: Any  # weakref to the sum the norm was computed for
    version: int
    weight: Any
    eps: float
    normed: torch.Tensor


PENDING: dict[int, Pending] = {}  # id(norm module) -> its norm, computed by the add before it


def version(t: torch.Tensor) -> int | None:
    """The tensor's version counter (it counts in-place changes), or None for an inference tensor (made under
    torch.inference_mode), which has none: then nothing may rely on the tensor being unchanged."""
    return None if t.is_inference() else t._version


def take(module: nn.Module, x: torch.Tensor, key: Any, eps: float) -> torch.Tensor | None:
    """The norm the module's partner add computed for this very input (unchanged since) with the same weight
    (`key`: the weight, or the parameter it is computed from) and epsilon; None: there is none."""
    if PENDING:
        entry = PENDING.pop(id(module), None)
        if entry is not None and entry.source() is x and entry.version is not None and version(x) == entry.version and \
                entry.weight is key and entry.eps == eps:
            return entry.normed
    return None


def rms_norm(module: nn.Module, x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    """The norm module's rms_norm: the one its partner add computed for this very input, else its own launch."""
    normed = take(module, x, weight, eps) if PENDING else None
    return normed if normed is not None else ops.rms_norm(x, weight, eps)


class NormParameters(NamedTuple):
    """What an rms_norm swap computes with now: its weight, epsilon and weight offset (Gemma's 1 + w), and the key
    `take` compares (the weight itself, or the parameter it is computed from)."""

    weight: Any
    eps: float
    key: Any
    weight_offset: float = 0.0


def with_parameters(forward: Callable, parameters: Callable[[], NormParameters | None]) -> Callable:
    """Marks an rms_norm replacement's forward with how to read its parameters now (None: it would decline)."""
    forward.rms_parameters = parameters
    return forward
