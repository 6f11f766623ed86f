"""PyTorch's own op for each kernel family, called with the family's arguments: the baseline a kernel has to beat.

Where PyTorch has one native op (F.rms_norm, F.scaled_dot_product_attention, ...) that is the baseline, since it
is what a user's model runs without mpskernels; the gated and residual forms are the few native ops a model
writes for them. Families without a native op (rope, kv_cache_append, rope_kv_append) are measured against their
written-out reference, which is what PyTorch runs for them. Used by the anchor lane (benches/anchor_lane.py) and
selftest.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F

from .epilogue import ACTIVATIONS, bias_shape
from .spec import KernelFamily


def _softmax_logits(x, mask, scale, softcap=None):
    v = x if scale == 1.0 else x * scale
    if softcap is not None:
        v = torch.tanh(v / softcap) * softcap
    return v if mask is None else v + mask


def _rms_norm(x, w, eps, offset=0.0):
    """F.rms_norm, with the weight w + offset where there is an offset (Gemma's 1 + w)."""
    return F.rms_norm(x, x.shape[-1:], w if not offset else w + offset, eps)


def _add_norm(norm):
    def run(x, residual, *rest):
        h = x + residual
        return norm(h, *rest), h
    return run


def _gated(activation):
    return lambda a, b, *rest: activation(a, *rest) * b


def _gelu(x, approximate="none"):
    return F.gelu(x, approximate=approximate)


NATIVE: dict[str, Callable[..., Any] | None] = {
    "silu": F.silu,
    "gelu": _gelu,
    "mish": F.mish,
    "hardswish": F.hardswish,
    "swiglu": _gated(F.silu),
    "geglu": _gated(_gelu),
    "swiglu_split": lambda x: _gated(F.silu)(*x.chunk(2, -1)),
    "geglu_split": lambda x, approximate="none": _gated(_gelu)(*x.chunk(2, -1), approximate),
    "bias_act": lambda x, bias, act="none", dim=-1: ACTIVATIONS[act](x + bias.view(bias_shape(x.dim(), dim))),
    "attention": lambda q, k, v, mask, causal, scale=None, kv_len=None: F.scaled_dot_product_attention(
        q, k[:, :, :kv_len], v[:, :, :kv_len], attn_mask=mask, is_causal=causal, scale=scale, enable_gqa=True),
    "group_norm": lambda x, groups, w, b, eps: F.group_norm(x, groups, w, b, eps),
    "layer_norm": lambda x, w, b, eps: F.layer_norm(x, x.shape[-1:], w, b, eps),
    "add_layer_norm": _add_norm(lambda h, w, b, eps: F.layer_norm(h, h.shape[-1:], w, b, eps)),
    "rms_norm": _rms_norm,
    "add_rms_norm": _add_norm(_rms_norm),
    "softmax": lambda x, mask=None, scale=1.0, softcap=None: torch.softmax(
        _softmax_logits(x, mask, scale, softcap), -1),
    "log_softmax": lambda x, mask=None, scale=1.0, softcap=None: torch.log_softmax(
        _softmax_logits(x, mask, scale, softcap), -1),
    # no single native op: the eager written-out form (several kernels) is what PyTorch runs
    "rope": None,
    "kv_cache_append": None,
    "rope_kv_append": None,
}


def native_fn(family: KernelFamily) -> tuple[Callable[..., Any], str]:
    """PyTorch's op for the family and what it is ("native op", or the written-out reference)."""
    fn = NATIVE.get(family.name)
    return (fn, "native op") if fn is not None else (family.reference, "eager written-out form")
