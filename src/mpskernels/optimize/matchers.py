"""Which modules a kernel can replace: matched by type, or recognised by what they compute.

A matcher looks at one module and answers with a Replacement (a forward function built on mpskernels.ops), a
reason it cannot be replaced, or None when it does not apply. Matchers are data: adding a kernel adds an entry here,
never a patcher per model architecture.

Type matchers cover torch.nn modules. Computation recognisers cover user modules whose class we do not know (e.g.
a LlamaRMSNorm written out as x * rsqrt(mean(x^2) + eps) * w): they propose a kernel from the module's parameters
and attributes, and optimize() accepts the proposal only after the module's own forward and the kernel agree on
probe inputs of several shapes and distributions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from .. import ops


@dataclass(frozen=True)
class Replacement:
    kernel: str
    forward: Callable[..., Any]
    matched_by: str  # "type" or "computation"
    # Probe inputs (for computation matches): shape factories from the module -> list of input shapes.
    probe_shapes: Callable[[nn.Module], list[tuple[int, ...]]] | None = None


Match = Replacement | str | None
Matcher = Callable[[nn.Module], Match]


def _has_op(name: str) -> bool:
    return hasattr(ops, name)


# ---- by type ----


def match_rms_norm(m: nn.Module) -> Match:
    if not isinstance(m, nn.RMSNorm):
        return None
    if len(m.normalized_shape) != 1:
        return "normalises over more than the last dimension"

    def forward(x: torch.Tensor) -> torch.Tensor:
        eps = m.eps if m.eps is not None else torch.finfo(x.dtype).eps
        return ops.rms_norm(x, m.weight, eps)

    return Replacement("rms_norm", forward, "type")


def match_silu(m: nn.Module) -> Match:
    if not isinstance(m, nn.SiLU):
        return None
    if m.inplace:
        return "in-place SiLU (the kernel writes a new tensor)"
    return Replacement("silu", lambda x: ops.silu(x), "type")


def match_gelu(m: nn.Module) -> Match:
    if not isinstance(m, nn.GELU):
        return None
    approximate = m.approximate
    return Replacement("gelu", lambda x: ops.gelu(x, approximate), "type")


def match_mish(m: nn.Module) -> Match:
    if not isinstance(m, nn.Mish):
        return None
    if m.inplace:
        return "in-place Mish (the kernel writes a new tensor)"
    return Replacement("mish", lambda x: ops.mish(x), "type")


def match_hardswish(m: nn.Module) -> Match:
    if not isinstance(m, nn.Hardswish):
        return None
    if m.inplace:
        return "in-place Hardswish (the kernel writes a new tensor)"
    return Replacement("hardswish", lambda x: ops.hardswish(x), "type")


TYPE_MATCHERS: list[Matcher] = [match_rms_norm, match_silu, match_gelu, match_mish, match_hardswish]


# ---- by computation ----

EPS_ATTRIBUTES = ("eps", "variance_epsilon", "epsilon")


def _own_parameters(m: nn.Module) -> dict[str, torch.Tensor]:
    return dict(m.named_parameters(recurse=False))


def _is_torch_builtin(m: nn.Module) -> bool:
    return type(m).__module__.startswith("torch.")


def recognise_rms_norm(m: nn.Module) -> Match:
    """A module with one 1-D `weight` and an epsilon attribute may be an RMSNorm written out by hand."""
    if _is_torch_builtin(m) or list(m.children()) or list(m.buffers(recurse=False)):
        return None
    params = _own_parameters(m)
    weight = params.get("weight")
    if set(params) != {"weight"} or weight.dim() != 1:
        return None
    eps = next((getattr(m, a) for a in EPS_ATTRIBUTES if isinstance(getattr(m, a, None), float)), None)
    if eps is None:
        return None
    return Replacement("rms_norm", lambda x: ops.rms_norm(x, m.weight, eps), "computation",
                       probe_shapes=lambda mod: [(3, weight.shape[0]), (2, 5, weight.shape[0])])


def _activation_probe_shapes(m: nn.Module) -> list[tuple[int, ...]]:
    return [(4, 33), (2, 3, 7)]


# Element-wise activations a parameter-free leaf module may compute, tried in this order.
ACTIVATIONS: list[tuple[str, Callable[[torch.Tensor], torch.Tensor]]] = [
    ("silu", lambda x: ops.silu(x)),
    ("gelu", lambda x: ops.gelu(x, "none")),
    ("gelu", lambda x: ops.gelu(x, "tanh")),
    ("mish", lambda x: ops.mish(x)),
    ("hardswish", lambda x: ops.hardswish(x)),
]


def recognise_activations(m: nn.Module) -> list[Replacement] | None:
    """A parameter-free leaf module may compute a known activation (e.g. x * sigmoid(x) is SiLU)."""
    if _is_torch_builtin(m) or list(m.children()) or _own_parameters(m) or list(m.buffers(recurse=False)):
        return None
    return [Replacement(kernel, forward, "computation", probe_shapes=_activation_probe_shapes)
            for kernel, forward in ACTIVATIONS if _has_op(kernel)]


COMPUTATION_RECOGNISERS: list[Callable[[nn.Module], Match | list[Replacement]]] = [
    recognise_rms_norm, recognise_activations]


def find_replacement(m: nn.Module) -> Match:
    """The first answer of the type matchers, then of the recognisers (which optimize() must confirm by probing).

    Recognisers may propose several kernels for one module (a parameter-free module could be any activation);
    `candidates()` returns all of them, in order.
    """
    for matcher in TYPE_MATCHERS:
        answer = matcher(m)
        if answer is not None:
            return answer
    return None


def candidates(m: nn.Module) -> list[Replacement]:
    out = []
    for recogniser in COMPUTATION_RECOGNISERS:
        answer = recogniser(m)
        for proposal in answer if isinstance(answer, list) else [answer]:
            if isinstance(proposal, Replacement) and _has_op(proposal.kernel):
                out.append(proposal)
    return out
