"""Float64 oracles written from each op's documented formula (docs/kernels.md), independent of the ops' own
PyTorch references: means are exactly rounded sums (math.fsum), so a constant row has mean equal to its value and
deviation exactly 0, and nothing overflows that the exact result does not. Each returns float64 tensors."""

from __future__ import annotations

import math

import torch

SQRT_2 = math.sqrt(2.0)


def f64(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.detach().to(torch.float64)


def exact_row_means(x: torch.Tensor) -> torch.Tensor:
    """Mean of each row of a 2-D float64 tensor, correctly rounded (inf/NaN rows: NaN or +-inf as fsum gives)."""
    out = []
    for row in x.tolist():
        try:
            out.append(math.fsum(row) / len(row))
        except (OverflowError, ValueError):  # fsum raises on mixed infinities / intermediate overflow
            out.append(sum(row) / len(row))
    return torch.tensor(out, dtype=torch.float64).unsqueeze(-1)


def normalize(rows: torch.Tensor, eps: float) -> torch.Tensor:
    """(v - mean) / sqrt(var + eps) per row of a 2-D float64 tensor, biased variance."""
    if rows.shape[-1] == 0:
        return rows
    mean = exact_row_means(rows)
    dev = rows - mean
    var = exact_row_means(dev * dev)
    return dev / torch.sqrt(var + eps)


def layer_norm(x, weight, bias, eps):
    cols = x.shape[-1]
    y = normalize(f64(x).reshape(-1, cols), eps).reshape(x.shape)
    if weight is not None:
        y = y * f64(weight)
    if bias is not None:
        y = y + f64(bias)
    return y


def add_layer_norm(x, residual, weight, bias, eps):
    h = x + residual  # documented: the residual sum is rounded to the op's dtype before it is normalised
    return layer_norm(h, weight, bias, eps), f64(h)


def group_norm(x, groups, weight, bias, eps):
    n, c = x.shape[:2]
    y = normalize(f64(x).reshape(n * groups, -1), eps).reshape(x.shape)
    per_channel = (1, c) + (1,) * (x.dim() - 2)
    if weight is not None:
        y = y * f64(weight).reshape(per_channel)
    if bias is not None:
        y = y + f64(bias).reshape(per_channel)
    return y


def rms_norm(x, weight, eps):
    cols = x.shape[-1]
    rows = f64(x).reshape(-1, cols)
    ms = exact_row_means(rows * rows) if cols else rows.sum(-1, keepdim=True)
    y = (rows / torch.sqrt(ms + eps)).reshape(x.shape)
    return y * f64(weight) if weight is not None else y


def add_rms_norm(x, residual, weight, eps):
    h = x + residual
    return rms_norm(h, weight, eps), f64(h)


# ---- element-wise: IEEE evaluation of the formula in float64 (x * 0 at x = -inf is NaN, as the formula says) ----


def silu(x):
    x = f64(x)
    return x / (1.0 + torch.exp(-x))


def gelu(x, approximate="none"):
    x = f64(x)
    if approximate == "tanh":
        inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)
        return 0.5 * x * (1.0 + torch.tanh(inner))
    return 0.5 * x * torch.special.erfc(-x / SQRT_2)


def mish(x):
    x = f64(x)
    softplus = torch.where(x > 30, x, torch.log1p(torch.exp(x)))
    return x * torch.tanh(softplus)


def hardswish(x):
    x = f64(x)
    return x * torch.clamp(x + 3.0, 0.0, 6.0) / 6.0


def swiglu(a, b):
    return silu(a) * f64(b)


def geglu(a, b, approximate="none"):
    return gelu(a, approximate) * f64(b)


def swiglu_split(x):
    a, b = x.chunk(2, -1)
    return swiglu(a, b)


def geglu_split(x, approximate="none"):
    a, b = x.chunk(2, -1)
    return geglu(a, b, approximate)


ACTIVATIONS = {
    "none": lambda y: y,
    "relu": lambda y: torch.where(y > 0, y, torch.where(torch.isnan(y), y, 0.0 * y.abs())),
    "relu6": lambda y: torch.where(torch.isnan(y), y, y.clamp(0.0, 6.0)),
    "sigmoid": lambda y: 1.0 / (1.0 + torch.exp(-y)),
    "tanh": torch.tanh,
    "silu": silu,
    "gelu": gelu,
    "gelu_tanh": lambda y: gelu(y, "tanh"),
    "mish": mish,
    "hardswish": hardswish,
}


def bias_act(x, bias, act="none", dim=-1):
    d = dim % x.dim()
    shape = (-1,) + (1,) * (x.dim() - d - 1)
    return ACTIVATIONS[act](f64(x) + f64(bias).view(shape))


# ---- softmax and attention ----


def _softmax(z: torch.Tensor) -> torch.Tensor:
    m = z.amax(-1, keepdim=True)
    e = torch.exp(z - m)
    return e / e.sum(-1, keepdim=True)


def _logits(x, mask, scale):
    z = f64(x) * scale
    if mask is not None:
        z = z + f64(mask)
    return z


def softmax(x, mask=None, scale=1.0):
    return _softmax(_logits(x, mask, scale))


def log_softmax(x, mask=None, scale=1.0):
    z = _logits(x, mask, scale)
    m = z.amax(-1, keepdim=True)
    return z - m - torch.log(torch.exp(z - m).sum(-1, keepdim=True))


def attention(q, k, v, mask, causal, scale=None, kv_len=None):
    n = k.shape[2] if kv_len is None else kv_len
    sq, d = q.shape[2], q.shape[3]
    group = q.shape[1] // k.shape[1]
    keys = f64(k[:, :, :n]).repeat_interleave(group, dim=1)
    values = f64(v[:, :, :n]).repeat_interleave(group, dim=1)
    s = f64(q) @ keys.transpose(-1, -2) * (1.0 / math.sqrt(d) if scale is None else scale)
    if mask is not None:
        m = mask if mask.shape[-1] == 1 else mask[..., :n]
        s = s.masked_fill(~m, -math.inf) if m.dtype == torch.bool else s + f64(m)
    if causal:
        pos = torch.arange(sq) + (n - sq)
        s = s.masked_fill(torch.arange(n)[None, :] > pos[:, None], -math.inf)
    return _softmax(s) @ values
