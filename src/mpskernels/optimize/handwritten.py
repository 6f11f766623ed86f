"""Computation recognisers for the hand-written forms seen in the wild that matchers.py's first recognisers miss.

Each one proposes kernels from a module's structure (its parameters' shapes, its Linear children's sizes) and never
from names; optimize() keeps a proposal only after the module's own forward and the kernel agree on probe inputs
(probe.py). Where the structure leaves a choice open (which parameter is the weight, which half of a fused
projection is the gate, which epsilon a forward hard-codes), every choice is proposed and probing picks the one that
computes what the module computes, or none.

- an RMSNorm whose one 1-D parameter has any name (`scale`, `g`, or `weight` without an epsilon attribute);
- a LayerNorm written out (mean and variance over the last dimension), with a weight-like and a bias-like 1-D
  parameter under any names, or parameter-free with an epsilon attribute (then also an RMSNorm without weight);
- a SwiGLU / GeGLU MLP whose gate and up projections are one fused Linear d -> 2h split with chunk(2, -1), then a
  Linear h -> d;
- a gated MLP of three Linear children whose activation is called as a function (F.silu) in its forward:
  matchers.recognise_gated_mlp needs the activation as a child module;
- Gemma's RMSNorm, x_hat * (1 + weight);
- a rotary-embedding module with its own forward(q, k) that makes its tables itself (rotary_module.py).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from .. import ops
from . import pending
from .matchers import (EPS_ATTRIBUTES, GATES, SPLIT_GATES, Replacement, _activation_kind, _own_parameters,
                       gated_projections, gated_proposals, is_torch_builtin)
from .rotary_module import recognise_rotary_module

# Epsilons forwards hard-code (LLaMA 1e-6, PyTorch's LayerNorm 1e-5, BERT 1e-12, T5 1e-6, some 1e-8), tried in turn
# when the module holds none; the tiny probe inputs tell them apart.
COMMON_EPS = (1e-6, 1e-5, 1e-8, 1e-12)
NORM_SIZES = (16, 24)  # the last dimension probed for a parameter-free norm


def _leaf(m: nn.Module) -> bool:
    return not is_torch_builtin(m) and not list(m.children()) and not list(m.buffers(recurse=False))


def _eps_attribute(m: nn.Module) -> str | None:
    return next((a for a in EPS_ATTRIBUTES if isinstance(getattr(m, a, None), float)), None)


def _eps_choices(m: nn.Module) -> list[tuple[str | None, float]]:
    """(attribute, value) pairs to propose: the module's epsilon attribute (read again at call time), or the common
    hard-coded ones."""
    attribute = _eps_attribute(m)
    return [(attribute, getattr(m, attribute))] if attribute else [(None, eps) for eps in COMMON_EPS]


def _eps_now(m: nn.Module, attribute: str | None, fixed: float) -> float | None:
    """The epsilon for this call: the attribute's current value (None: it is no longer a float), or the fixed one."""
    if attribute is None:
        return fixed
    value = getattr(m, attribute, None)
    return value if isinstance(value, float) else None


def _norm_shapes(size: int | None) -> Callable[[nn.Module], list[tuple[int, ...]]]:
    first, second = (size, size) if size else NORM_SIZES
    return lambda mod: [(3, first), (2, 5, second)]


def recognise_named_rms_norm(m: nn.Module) -> list[Replacement] | None:
    """One 1-D parameter under any name: x * rsqrt(mean(x^2) + eps) * p. (matchers.recognise_rms_norm takes the
    one called `weight` next to an epsilon attribute.)"""
    params = _own_parameters(m)
    if not _leaf(m) or len(params) != 1:
        return None
    ((name, p),) = params.items()
    if p.dim() != 1 or (name == "weight" and _eps_attribute(m)):
        return None
    out = []
    for attribute, eps in _eps_choices(m):
        def forward(x: torch.Tensor, attribute=attribute, eps=eps) -> Any:
            now = _eps_now(m, attribute, eps)
            return NotImplemented if now is None else pending.rms_norm(m, x, getattr(m, name), now)

        def parameters(attribute=attribute, eps=eps) -> pending.NormParameters | None:
            now = _eps_now(m, attribute, eps)
            return None if now is None else pending.NormParameters(getattr(m, name), now, getattr(m, name))

        out.append(Replacement("rms_norm", pending.with_parameters(forward, parameters), "computation",
                               probe_shapes=_norm_shapes(p.shape[0])))
    return out


def recognise_offset_rms_norm(m: nn.Module) -> list[Replacement] | None:
    """x * rsqrt(mean(x^2) + eps) * (1 + p) with one 1-D parameter p (Gemma's RMSNorm, whose weight starts at
    zero): the rms_norm op with weight p and weight_offset 1, which adds the 1 in fp32 inside the kernel, as
    Gemma's code does (no extra op; edits of p are always seen). A weight in another dtype than x's goes as the
    tensor 1 + p in x's dtype, computed at the call."""
    params = _own_parameters(m)
    if not _leaf(m) or len(params) != 1:
        return None
    ((name, p),) = params.items()
    if p.dim() != 1:
        return None
    out = []
    for attribute, eps in _eps_choices(m):
        def forward(x: torch.Tensor, attribute=attribute, eps=eps) -> Any:
            now = _eps_now(m, attribute, eps)
            if now is None:
                return NotImplemented
            weight = getattr(m, name)
            normed = pending.take(m, x, weight, now)
            if normed is not None:
                return normed
            if weight.dtype != x.dtype:
                return ops.rms_norm(x, (weight + 1).to(x.dtype), now)
            return ops.rms_norm(x, weight, now, 1.0)

        def parameters(attribute=attribute, eps=eps) -> pending.NormParameters | None:
            now = _eps_now(m, attribute, eps)
            return None if now is None else pending.NormParameters(getattr(m, name), now, getattr(m, name), 1.0)

        out.append(Replacement("rms_norm", pending.with_parameters(forward, parameters), "computation",
                               probe_shapes=_norm_shapes(p.shape[0])))
    return out


def recognise_layer_norm(m: nn.Module) -> list[Replacement] | None:
    """(x - mean) / sqrt(var + eps) over the last dimension, times one 1-D parameter plus the other (either may be
    the weight), or parameter-free with an epsilon attribute (then also x * rsqrt(mean(x^2) + eps))."""
    params = _own_parameters(m)
    if not _leaf(m) or len(params) not in (0, 2):
        return None
    if not params:
        if _eps_attribute(m) is None:
            return None  # a parameter-free module is tried as an activation; a norm holds its epsilon
        out = []
        for attribute, eps in _eps_choices(m):
            def layer(x: torch.Tensor, attribute=attribute, eps=eps) -> Any:
                now = _eps_now(m, attribute, eps)
                return NotImplemented if now is None else ops.layer_norm(x, None, None, now)

            def rms(x: torch.Tensor, attribute=attribute, eps=eps) -> Any:
                now = _eps_now(m, attribute, eps)
                return NotImplemented if now is None else ops.rms_norm(x, None, now)

            out += [Replacement("layer_norm", layer, "computation", probe_shapes=_norm_shapes(None)),
                    Replacement("rms_norm", rms, "computation", probe_shapes=_norm_shapes(None))]
        return out
    (a, pa), (b, pb) = params.items()
    if pa.dim() != 1 or pa.shape != pb.shape:
        return None
    out = []
    for attribute, eps in _eps_choices(m):
        for weight, bias in ((a, b), (b, a)):
            def forward(x: torch.Tensor, weight=weight, bias=bias, attribute=attribute, eps=eps) -> Any:
                now = _eps_now(m, attribute, eps)
                return NotImplemented if now is None else ops.layer_norm(x, getattr(m, weight), getattr(m, bias), now)

            out.append(Replacement("layer_norm", forward, "computation", probe_shapes=_norm_shapes(pa.shape[0])))
    return out


# ---- gated MLPs ----

def _kinds(activation: str | None) -> list[str]:
    """The gate activations to try: the child's own, or all of them when it is hand-written or a function call."""
    return ["silu"] if activation == "silu" else ["gelu"] if activation == "gelu" else ["silu", "gelu", "gelu_tanh"]


def recognise_split_gated_mlp(m: nn.Module) -> list[Replacement] | None:
    """down(act(a) * b) with a, b = fused(x).chunk(2, -1): two Linear children, d -> 2h and h -> d, and at most one
    activation child (or none: F.silu in the forward). Which half is the gate is settled by probing."""
    children = dict(m.named_children())
    linears = {n: c for n, c in children.items() if isinstance(c, nn.Linear)}
    others = {n: _activation_kind(c) for n, c in children.items() if n not in linears}
    if is_torch_builtin(m) or _own_parameters(m) or len(linears) != 2 or len(others) > 1 or \
            any(k is None for k in others.values()):
        return None
    pairs = [(u, d) for u in linears for d in linears if u != d and
             linears[u].out_features == 2 * linears[d].in_features and
             linears[u].in_features == linears[d].out_features]
    if len(pairs) != 1:
        return None
    up, down = pairs[0]
    activation = next(iter(others.values()), None)
    d = linears[up].in_features
    out = []
    for kind in _kinds(activation):
        for gate_first in (True, False):
            kernel = SPLIT_GATES[kind][0] if gate_first else GATES[kind][0]
            out.append(Replacement(kernel, _split_forward(m, up, down, kind, gate_first), "computation",
                                   probe_shapes=lambda mod, d=d: [(3, d), (2, 5, d)]))
    return out


def _split_forward(m: nn.Module, up: str, down: str, kind: str, gate_first: bool) -> Callable[[torch.Tensor], Any]:
    """The children looked up at call time: one replaced after optimize() (LoRA, quantisation) was not probed."""
    probed = dict(m._modules)
    split, second = SPLIT_GATES[kind][1], GATES[kind][1]

    def forward(x: torch.Tensor) -> Any:
        if len(m._modules) != len(probed) or any(m._modules.get(n) is not c for n, c in probed.items()):
            return NotImplemented
        y = m._modules[up](x)
        if gate_first:
            return m._modules[down](split(y))
        first_half, gate = y.chunk(2, -1)
        return m._modules[down](second(gate, first_half))

    return forward


def recognise_functional_gated_mlp(m: nn.Module) -> list[Replacement] | None:
    """down(act(gate(x)) * up(x)) with three Linear children (two d -> h, one h -> d) and the activation called as
    a function in the forward; which of the two is the gate, and which activation, is settled by probing."""
    children = dict(m.named_children())
    if is_torch_builtin(m) or _own_parameters(m) or len(children) != 3 or \
            not all(isinstance(c, nn.Linear) for c in children.values()):
        return None
    roles = gated_projections(children)
    if roles is None:
        return None
    return gated_proposals(m, roles, _kinds(None))


COMPUTATION_RECOGNISERS = [recognise_named_rms_norm, recognise_layer_norm, recognise_split_gated_mlp,
                           recognise_functional_gated_mlp, recognise_offset_rms_norm, recognise_rotary_module]
