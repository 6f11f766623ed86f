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

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from .. import ops
from . import gate_up, pending


@dataclass(frozen=True)
class Replacement:
    kernel: str
    forward: Callable[..., Any]
    matched_by: str  # "type" or "computation"
    # Probe inputs (for computation matches): shape factories from the module -> list of input shapes.
    probe_shapes: Callable[[nn.Module], list[tuple[int, ...]]] | None = None
    # True: `forward` takes the module's whole call signature (*args, **kwargs) and returns NotImplemented for
    # calls it does not cover (the module's own forward then runs). False: it takes the lone input tensor.
    full_signature: bool = False
    # True: the new forward still runs the module's children (a routed forward), so they may be swapped too.
    keeps_children: bool = False
    detail: str = ""  # what the replacement does, for the report (routed forwards)
    # Why a call (args, kwargs) is one the kernel does not take, for the report (None: the generic reasons apply).
    explain: Callable[[tuple, dict], str | None] | None = None
    # What else identifies the code that runs, for the timing cache (a pack's source digest: a regenerated pack
    # of the same name is timed again).
    version: str = ""
    # Builds this replacement again for another module (a deep copy or an unpickled model of the one it was made
    # for): a picklable callable, module -> Replacement (anything else: that module runs its own forward).
    rebuild: Callable[[nn.Module], Any] | None = None
    # Confirms a computation match whose inputs are not one tensor (module, device, tolerance scale) ->
    # (agrees, detail); used instead of probing `forward` with `probe_shapes`.
    confirm: Callable[[nn.Module, torch.device, float], tuple[bool, str]] | None = None


Match = Replacement | str | None
Matcher = Callable[[nn.Module], Match]


def _has_op(name: str) -> bool:
    return hasattr(ops, name)


# ---- by type ----


def is_plain(m: nn.Module, module_type: type) -> bool:
    """`m` is a `module_type` whose forward is that class's own: a subclass with its own forward computes
    something else (it is left to the computation recognisers, which confirm by probing)."""
    return isinstance(m, module_type) and type(m).forward is module_type.forward


def match_rms_norm(m: nn.Module) -> Match:
    if not is_plain(m, nn.RMSNorm):
        return None
    if len(m.normalized_shape) != 1:
        return "normalises over more than the last dimension"

    def forward(x: torch.Tensor) -> torch.Tensor:
        return pending.rms_norm(m, x, m.weight, default_eps(m.eps, x.dtype))

    # eps=None depends on the input's dtype: such a norm is not paired with a residual add (decoder.py)
    def parameters() -> pending.NormParameters | None:
        return pending.NormParameters(m.weight, m.eps, m.weight) if isinstance(m.eps, float) else None

    return Replacement("rms_norm", pending.with_parameters(forward, parameters), "type")


def default_eps(eps: float | None, dtype: torch.dtype) -> float:
    """nn.RMSNorm's epsilon: eps=None means the machine epsilon of the type PyTorch computes in, which for
    float16 and bfloat16 inputs is float32 (their own epsilon is 1000x larger and shifts the output visibly)."""
    if eps is not None:
        return eps
    return torch.finfo(dtype if dtype == torch.float64 else torch.float32).eps


def _elementwise_matcher(module_type: type, kernel: str) -> Matcher:
    """A torch.nn activation with an `inplace` flag and an mpskernels op taking the lone input."""

    def match(m: nn.Module) -> Match:
        if not is_plain(m, module_type):
            return None
        if m.inplace:
            return f"in-place {module_type.__name__} (the kernel writes a new tensor)"
        return Replacement(kernel, lambda x: getattr(ops, kernel)(x), "type")

    match.__name__ = f"match_{kernel}"
    return match


match_silu = _elementwise_matcher(nn.SiLU, "silu")
match_mish = _elementwise_matcher(nn.Mish, "mish")
match_hardswish = _elementwise_matcher(nn.Hardswish, "hardswish")


def match_gelu(m: nn.Module) -> Match:
    if not is_plain(m, nn.GELU):
        return None
    return Replacement("gelu", lambda x: ops.gelu(x, m.approximate), "type")  # read at call time: may change


def match_layer_norm(m: nn.Module) -> Match:
    if not is_plain(m, nn.LayerNorm):
        return None
    if len(m.normalized_shape) != 1:
        return "normalises over more than the last dimension"
    return Replacement("layer_norm", lambda x: ops.layer_norm(x, m.weight, m.bias, m.eps), "type")


def match_group_norm(m: nn.Module) -> Match:
    if not is_plain(m, nn.GroupNorm):
        return None
    return Replacement("group_norm", lambda x: ops.group_norm(x, m.num_groups, m.weight, m.bias, m.eps), "type")


def _last_dim_forward(m: nn.Module, kernel: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """Softmax over `m.dim`: the kernel when that is the last dimension, the module's own forward otherwise."""
    original = type(m).forward
    op = getattr(ops, kernel)

    def forward(x: torch.Tensor) -> torch.Tensor:
        dim = m.dim if m.dim is not None else legacy_softmax_dim(x.dim())
        if x.dim() > 0 and dim in (-1, x.dim() - 1):
            return op(x, None, 1.0)
        return original(m, x)

    return forward


def legacy_softmax_dim(ndim: int) -> int:
    """The dimension nn.Softmax(dim=None) and nn.LogSoftmax(dim=None) take (PyTorch's deprecated implicit
    choice): 0 for 0-, 1- and 3-D inputs, 1 otherwise."""
    return 0 if ndim in (0, 1, 3) else 1


def match_softmax(m: nn.Module) -> Match:
    if is_plain(m, nn.Softmax):
        return Replacement("softmax", _last_dim_forward(m, "softmax"), "type")
    if is_plain(m, nn.LogSoftmax):
        return Replacement("log_softmax", _last_dim_forward(m, "log_softmax"), "type")
    return None


def _additive_mask(mask: torch.Tensor | None, dtype: torch.dtype, batch: int, heads: int) -> torch.Tensor | None:
    """nn.MultiheadAttention's attn_mask (bool: True = masked out; or float, added) as a 4-D additive mask."""
    if mask is None:
        return None
    if mask.dtype == torch.bool:
        mask = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))
    mask = mask.to(dtype)
    if mask.dim() == 2:
        return mask[None, None]
    return mask.view(batch, heads, *mask.shape[-2:])  # [batch * heads, Sq, Sk]


def _multihead_attention(m: nn.MultiheadAttention) -> Callable[..., Any]:
    def forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        if need_weights or key_padding_mask is not None or (m.training and m.dropout > 0):
            return NotImplemented  # attention weights or padding masks: the module's own path
        if not m.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        if m._qkv_same_embed_dim:
            wq, wk, wv = m.in_proj_weight.chunk(3)
        else:
            wq, wk, wv = m.q_proj_weight, m.k_proj_weight, m.v_proj_weight
        bq, bk, bv = m.in_proj_bias.chunk(3) if m.in_proj_bias is not None else (None, None, None)
        b, sq, e = query.shape
        heads, head_dim = m.num_heads, e // m.num_heads

        def split(t, w, bias):
            return F.linear(t, w, bias).view(b, t.shape[1], heads, head_dim).transpose(1, 2)

        q, k, v = split(query, wq, bq), split(key, wk, bk), split(value, wv, bv)
        causal = bool(is_causal and attn_mask is None and q.shape[2] == k.shape[2])
        mask = None if causal else _additive_mask(attn_mask, q.dtype, b, heads)
        out = ops.attention(q, k, v, mask, causal, None, None)
        out = m.out_proj(out.transpose(1, 2).reshape(b, sq, e))
        return (out if m.batch_first else out.transpose(0, 1)), None

    return forward


def match_multihead_attention(m: nn.Module) -> Match:
    if not is_plain(m, nn.MultiheadAttention):
        return None
    if m.bias_k is not None or m.add_zero_attn:
        return "bias_k/bias_v or add_zero_attn"
    if m.kdim != m.embed_dim or m.vdim != m.embed_dim:
        return "key/value dimensions differ from the embedding dimension"
    return Replacement("attention", _multihead_attention(m), "type", full_signature=True,
                       explain=functools.partial(_multihead_attention_declines, m))


def _multihead_attention_declines(m: nn.MultiheadAttention, args: tuple, kwargs: dict) -> str | None:
    """Why nn.MultiheadAttention's own path ran for this call (the kernel computes no attention weights)."""
    names = ("query", "key", "value", "key_padding_mask", "need_weights")
    bound = {**dict(zip(names, args)), **kwargs}
    if bound.get("need_weights", True):
        return ("called with need_weights=True (nn.MultiheadAttention's default): the module must return the "
                "attention weights, which the kernel never forms; call it with need_weights=False to use the kernel")
    if bound.get("key_padding_mask") is not None:
        return "called with a key_padding_mask, which the kernel does not take"
    if m.training and m.dropout > 0:
        return "attention dropout in training mode"
    return None


TYPE_MATCHERS: list[Matcher] = [match_rms_norm, match_silu, match_gelu, match_mish, match_hardswish,
                                match_layer_norm, match_group_norm, match_softmax, match_multihead_attention]


# ---- by computation ----

EPS_ATTRIBUTES = ("eps", "variance_epsilon", "epsilon")


def _own_parameters(m: nn.Module) -> dict[str, torch.Tensor]:
    return dict(m.named_parameters(recurse=False))


def is_torch_builtin(m: nn.Module) -> bool:
    return type(m).__module__.startswith("torch.")


def recognise_rms_norm(m: nn.Module) -> Match:
    """A module with one 1-D `weight` and an epsilon attribute may be an RMSNorm written out by hand."""
    if is_torch_builtin(m) or list(m.children()) or list(m.buffers(recurse=False)):
        return None
    params = _own_parameters(m)
    weight = params.get("weight")
    if set(params) != {"weight"} or weight.dim() != 1:
        return None
    attribute = next((a for a in EPS_ATTRIBUTES if isinstance(getattr(m, a, None), float)), None)
    if attribute is None:
        return None

    def forward(x: torch.Tensor) -> Any:
        eps = getattr(m, attribute, None)  # read at call time: it may be changed after optimize()
        return pending.rms_norm(m, x, m.weight, eps) if isinstance(eps, float) else NotImplemented

    def parameters() -> pending.NormParameters | None:
        eps = getattr(m, attribute, None)
        return pending.NormParameters(m.weight, eps, m.weight) if isinstance(eps, float) else None

    return Replacement("rms_norm", pending.with_parameters(forward, parameters), "computation",
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
    if is_torch_builtin(m) or list(m.children()) or _own_parameters(m) or list(m.buffers(recurse=False)):
        return None
    return [Replacement(kernel, forward, "computation", probe_shapes=_activation_probe_shapes)
            for kernel, forward in ACTIVATIONS if _has_op(kernel)]


# activation of the gate -> (fused gated op, the op on (gate, up))
GATES: dict[str, tuple[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]] = {
    "silu": ("swiglu", lambda gate, up: ops.swiglu(gate, up)),
    "gelu": ("geglu", lambda gate, up: ops.geglu(gate, up, "none")),
    "gelu_tanh": ("geglu", lambda gate, up: ops.geglu(gate, up, "tanh")),  # Gemma's gelu_pytorch_tanh
}
# activation of the gate -> (fused gated op, the op on one projection's output holding the gate half first)
SPLIT_GATES: dict[str, tuple[str, Callable[[torch.Tensor], torch.Tensor]]] = {
    "silu": ("swiglu_split", lambda y: ops.swiglu_split(y)),
    "gelu": ("geglu_split", lambda y: ops.geglu_split(y, "none")),
    "gelu_tanh": ("geglu_split", lambda y: ops.geglu_split(y, "tanh")),
}


def _activation_kind(m: nn.Module) -> str | None:
    if isinstance(m, nn.SiLU):
        return "silu"
    if isinstance(m, nn.GELU):
        return "gelu" if m.approximate == "none" else "gelu_tanh"
    if not is_torch_builtin(m) and not list(m.children()) and not _own_parameters(m):
        return "unknown"  # a hand-written activation: try both, probing decides
    return None


def recognise_gated_mlp(m: nn.Module) -> list[Replacement] | None:
    """down(act(gate(x)) * up(x)) — LLaMA/Mistral/Qwen-style MLPs — whatever the children are called: three Linear
    layers (two d -> h, one h -> d) and an activation. Which of the two is the gate is settled by probing."""
    children = dict(m.named_children())
    linears = {n: c for n, c in children.items() if isinstance(c, nn.Linear)}
    acts = {n: _activation_kind(c) for n, c in children.items() if n not in linears}
    acts = {n: k for n, k in acts.items() if k is not None}
    if is_torch_builtin(m) or len(linears) != 3 or len(acts) != 1 or len(children) != 4:
        return None
    (kind,) = acts.values()
    roles = gated_projections(linears)
    if roles is None:
        return None
    return gated_proposals(m, roles, [kind] if kind != "unknown" else list(GATES))  # hand-written: probing decides


def gated_proposals(m: nn.Module, roles: tuple[str, str, str, int], kinds: list[str]) -> list[Replacement]:
    """down(act(gate(x)) * up(x)) for every activation kind and both ways round of the two d -> h projections:
    first with the projections as one matmul (gate_up.py) where they are two plain Linear layers alike, then with
    two (the kernels the first ones launch may be ruled out by the config)."""
    first, second, down, d = roles
    shapes = lambda mod: [(3, d), (2, 5, d)]  # noqa: E731
    orders = ((first, second), (second, first))
    out = []
    if gate_up.fusable(m._modules[first], m._modules[second]):
        detail = "the gate and up projections as one matmul (their weights made one buffer)"
        out += [Replacement(SPLIT_GATES[kind][0], _gated_forward(m, gate, up, down, kind, fuse=True), "computation",
                            probe_shapes=shapes, detail=detail) for kind in kinds for gate, up in orders]
    out += [Replacement(GATES[kind][0], _gated_forward(m, gate, up, down, kind), "computation", probe_shapes=shapes)
            for kind in kinds for gate, up in orders]
    return out


def gated_projections(linears: dict[str, nn.Linear]) -> tuple[str, str, str, int] | None:
    """Of three Linear layers, the two d -> h projections (in the order given), the one h -> d down projection
    and d; None unless exactly one of them maps back what the other two map."""
    downs = [n for n, l in linears.items() if all(l.in_features == o.out_features and l.out_features == o.in_features
                                                  for k, o in linears.items() if k != n)]
    if len(downs) != 1:
        return None
    first, second = [n for n in linears if n != downs[0]]
    return first, second, downs[0], linears[downs[0]].out_features


def _gated_forward(m: nn.Module, gate: str, up: str, down: str, kind: str,
                   fuse: bool = False) -> Callable[[torch.Tensor], Any]:
    """down(act(gate(x)) * up(x)) with the children looked up at call time: a child replaced after optimize() (a
    LoRA or quantisation wrapper, another activation) is not the one probed, so the module's own forward runs.
    `fuse`: gate and up as one matmul, the gate half first, wherever gate_up.project takes the call."""
    probed = dict(m._modules)
    two_inputs, split = GATES[kind][1], SPLIT_GATES[kind][1]

    def forward(x: torch.Tensor) -> Any:
        if any(m._modules.get(name) is not child for name, child in probed.items()) or len(m._modules) != len(probed):
            return NotImplemented
        children = m._modules
        projected = gate_up.project(x, children[gate], children[up]) if fuse else None
        if projected is not None:
            return children[down](split(projected))
        return children[down](two_inputs(children[gate](x), children[up](x)))

    return forward


COMPUTATION_RECOGNISERS: list[Callable[[nn.Module], Match | list[Replacement]]] = [
    recognise_rms_norm, recognise_activations, recognise_gated_mlp]


def _all_recognisers() -> list[Callable[[nn.Module], Match | list[Replacement]]]:
    from .handwritten import COMPUTATION_RECOGNISERS as HANDWRITTEN  # handwritten.py builds on this module

    return COMPUTATION_RECOGNISERS + HANDWRITTEN


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
    for recogniser in _all_recognisers():
        answer = recogniser(m)
        for proposal in answer if isinstance(answer, list) else [answer]:
            if isinstance(proposal, Replacement) and _has_op(proposal.kernel):
                out.append(dataclasses.replace(proposal, rebuild=functools.partial(candidate_at, len(out))))
    return out


def candidate_at(index: int, m: nn.Module) -> Replacement | None:
    """The index-th computation proposal for `m` (a copy of the module it was confirmed on)."""
    found = candidates(m)
    return found[index] if index < len(found) else None


def type_match(m: nn.Module) -> Match:
    """find_replacement, as the rebuild of what it answered."""
    answer = find_replacement(m)
    return dataclasses.replace(answer, rebuild=type_match) if isinstance(answer, Replacement) else answer
