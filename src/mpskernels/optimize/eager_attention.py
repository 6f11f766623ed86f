"""Hugging Face's eager attention functions (`eager_attention_forward`), stood in for by two matmuls around one
softmax launch.

A model without an SDPA path (Gemma-2: its attention-logit soft-capping has none) calls a module-level function

    eager_attention_forward(module, query, key, value, attention_mask, dropout, scaling, softcap, **kwargs)

that repeats the KV heads (`repeat_kv`: two copies of the cache per layer), multiplies, scales, soft-caps (divide,
tanh, multiply), adds the mask and takes an fp32 softmax: about eight small device ops per layer and step besides
the two matmuls. The stand-in computes the same thing as a matmul of q grouped by KV head (each KV head's query
heads as extra rows: no copy of K or V), `ops.softmax` with the scale, the cap and the mask in one launch, and a
matmul with V.

A function is stood in for only when its meaning is pinned down: its parameters are those names (dropout, scaling
and softcap may be absent; Llama's takes scaling without a default), the extra keyword arguments it accepts are
never read by its code (the forward passes `sliding_window` and others the mask already encodes), and it agrees
with the stand-in on probes run with the attention module it serves. A call the stand-in does not take (dropout,
no scaling, gradients, a mask it cannot broadcast, attention weights requested through `output_attentions`) runs
the function itself.
"""

from __future__ import annotations

import dis
import inspect
import types
from typing import Any, Callable

import torch
from torch import nn

from .. import ops
from ..kernels.spec import FLOAT_DTYPES

REQUIRED = ("module", "query", "key", "value", "attention_mask")
OPTIONAL = ("dropout", "scaling", "softcap")

_verdicts: dict[tuple[Callable, int], bool] = {}  # (function, KV groups) -> whether the probes agreed


def eager_form(f: Any) -> inspect.Signature | None:
    """The signature of an eager attention function whose extra keyword arguments are never read; else None."""
    if not isinstance(f, types.FunctionType):
        return None
    try:
        signature = inspect.signature(f)
    except (TypeError, ValueError):
        return None
    named = [p for p in signature.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    names = tuple(p.name for p in named)
    if names[:len(REQUIRED)] != REQUIRED or not set(names[len(REQUIRED):]) <= set(OPTIONAL):
        return None
    others = [p for p in signature.parameters.values() if p not in named]
    if any(p.kind is not p.VAR_KEYWORD for p in others):
        return None
    if others and _reads(f.__code__, others[0].name):
        return None  # the extra arguments mean something to it
    return signature


def _reads(code: types.CodeType, name: str) -> bool:
    """Whether the function's code (nested functions included) loads the variable `name`."""
    return any(i.opname.startswith("LOAD") and i.argval == name for i in dis.get_instructions(code)) or \
        any(_reads(c, name) for c in code.co_consts if isinstance(c, types.CodeType))


def agrees(f: Callable, module: nn.Module) -> bool:
    """Whether `f` computes what the stand-in does, on probes with the module it serves (its KV head groups)."""
    groups = getattr(module, "num_key_value_groups", None)
    if not isinstance(groups, int) or groups < 1:
        return False
    if (f, groups) not in _verdicts:
        _verdicts[(f, groups)] = _probe(f, module, groups)
    return _verdicts[(f, groups)]


def _probe(f: Callable, module: nn.Module, groups: int) -> bool:
    parameters = inspect.signature(f).parameters
    if "scaling" not in parameters:
        return False  # the scale would be the function's own default: not knowable here
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(2, 2 * groups, 3, 16, generator=gen)
    k, v = torch.randn(2, 2, 5, 16, generator=gen), torch.randn(2, 2, 5, 16, generator=gen)
    mask = torch.zeros(2, 1, 3, 5).masked_fill(torch.rand(2, 1, 3, 5, generator=gen) < 0.3,
                                               torch.finfo(torch.float32).min)
    for softcap, m in ((None, None), (2.0, mask)):
        if softcap is not None and "softcap" not in parameters:
            continue
        extra = {"scaling": 0.3, **({"dropout": 0.0} if "dropout" in parameters else {}),
                 **({"softcap": softcap} if softcap is not None else {})}
        try:
            with torch.no_grad():
                want = f(module, q, k, v, m, **extra)
        except Exception:  # noqa: BLE001 - not a function of these arguments after all
            return False
        if not (isinstance(want, tuple) and len(want) == 2 and isinstance(want[0], torch.Tensor)):
            return False
        got = grouped_attention(q, k, v, m, 0.3, softcap, groups)
        if isinstance(got, str) or got.shape != want[0].shape or \
                not torch.allclose(got, want[0], rtol=1e-5, atol=1e-5):
            return False
    return True


def grouped_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, scaling: float,
                      softcap: float | None, groups: int) -> torch.Tensor | str:
    """softmax(softcap * tanh(q k^T * scaling / softcap) + mask) v over grouped KV heads, as [B, S, Hq, D]
    (eager_attention_forward's layout); or why these arguments are not for it."""
    reason = _mismatch(q, k, v, mask, groups)
    if reason:
        return reason
    b, hq, s, d = q.shape
    hk, n = k.shape[1], k.shape[2]
    rows = q.reshape(b, hk, groups * s, d)  # a KV head's query heads as rows: K and V are read, not repeated
    scores = torch.matmul(rows, k.transpose(2, 3)).view(b, hq, s, n)
    probs = ops.softmax(scores, mask, float(scaling), None if softcap is None else float(softcap))
    out = torch.matmul(probs.view(b, hk, groups * s, n), v).view(b, hq, s, d)
    return out.transpose(1, 2).contiguous()


def qkv_mismatch(q: Any, k: Any, v: Any, mask: Any) -> str | None:
    """Why q, k, v (and the mask) are not an inference call's 4-D float tensors of one dtype, one k/v shape, one
    batch and head dim; None when they are (shared with the SDPA route)."""
    tensors = [t for t in (q, k, v, mask) if t is not None]
    if not all(isinstance(t, torch.Tensor) for t in tensors):
        return "an argument is not a tensor"
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return "gradients are needed (the kernel is for inference)"
    if q.dim() != 4 or k.dim() != 4 or k.shape != v.shape:
        return "q, k, v are not 4-D with one k/v shape"
    if q.dtype not in FLOAT_DTYPES or not q.dtype == k.dtype == v.dtype or q.shape[0] != k.shape[0] \
            or q.shape[3] != k.shape[3]:
        return "q, k, v differ in dtype, batch or head_dim"
    return None


def _mismatch(q: Any, k: Any, v: Any, mask: Any, groups: int) -> str | None:
    reason = qkv_mismatch(q, k, v, mask)
    if reason:
        return reason
    if q.shape[1] != k.shape[1] * groups:
        return f"q {tuple(q.shape)} is not k {tuple(k.shape)} with {groups} query heads per KV head"
    if mask is not None:
        want = (q.shape[0], q.shape[1], q.shape[2], k.shape[2])
        if mask.dtype != q.dtype or mask.dim() != 4 or mask.shape[-1] != k.shape[2] or \
                any(m not in (1, w) for m, w in zip(mask.shape, want)):
            return f"mask {tuple(mask.shape)} {mask.dtype} is not additive in q's dtype over the scores {want}"
    return None


def _attentions_requested() -> bool:
    """Whether transformers is collecting attention weights for output_attentions (the stand-in has none)."""
    try:
        from transformers.utils.output_capturing import _active_collector
        collected = _active_collector.get()
    except Exception:  # noqa: BLE001 - another transformers version, or nothing being collected
        return False
    return isinstance(collected, dict) and "attentions" in collected


def stand_in(name: str, original: Callable, signature: inspect.Signature, stats: Any) -> Callable:
    """`original`'s stand-in: the grouped matmuls around ops.softmax, or `original` for a call it does not take."""

    def eager_attention(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            return original(*args, **kwargs)
        bound.apply_defaults()
        a = bound.arguments
        reason = None
        if a.get("dropout"):
            reason = f"dropout {a['dropout']} (training)"
        elif a.get("scaling") is None:
            reason = "no scaling given (the function's default)"
        elif _attentions_requested():
            reason = "attention weights requested (output_attentions)"
        else:
            out = grouped_attention(a["query"], a["key"], a["value"], a["attention_mask"], a["scaling"],
                                    a.get("softcap"), a["module"].num_key_value_groups)
            if not isinstance(out, str):
                stats.routed["eager attention"] += 1
                return out, None
            reason = out
        stats.not_routed[f"{name}: {reason}"] += 1
        return original(*args, **kwargs)

    return eager_attention


def eager_functions(module: nn.Module, called: dict[str, Any]) -> dict[str, tuple[Callable, inspect.Signature]]:
    """The eager attention functions among the globals the module's forward calls, confirmed on this module."""
    found = {}
    for name, value in called.items():
        signature = eager_form(value)
        if signature is not None and agrees(value, module):
            found[name] = (value, signature)
    return found
