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


def rms_norm(x, weight, eps, weight_offset=0.0):
    """x / sqrt(mean(x^2) + eps) * (weight + weight_offset) (Gemma's RMSNorm: 1 + w, the sum taken exactly)."""
    cols = x.shape[-1]
    rows = f64(x).reshape(-1, cols)
    ms = exact_row_means(rows * rows) if cols else rows.sum(-1, keepdim=True)
    y = (rows / torch.sqrt(ms + eps)).reshape(x.shape)
    return y * (f64(weight) + weight_offset) if weight is not None else y


def add_rms_norm(x, residual, weight, eps, weight_offset=0.0):
    h = x + residual
    return rms_norm(h, weight, eps, weight_offset), f64(h)


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
    "relu": lambda y: torch.where(torch.isnan(y), y, y.clamp(min=0.0)),
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


FLT_MAX = torch.finfo(torch.float32).max


def _as_fp32_range(z: torch.Tensor) -> torch.Tensor:
    """Values beyond fp32's range as +-inf (documented: softmax's logits are fp32 values)."""
    return torch.where(z.abs() > FLT_MAX, z.sign() * math.inf, z)


def _logits(x, mask, scale, softcap=None):
    """x * scale [soft-capped] + mask, each step an fp32 value (docs/kernels.md: beyond +-FLT_MAX a logit is
    +-inf); the cap bounds the scaled value to (-softcap, softcap): cap * tanh(z / cap)."""
    z = _as_fp32_range(f64(x) * scale)
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    if mask is not None:
        z = _as_fp32_range(z + f64(mask))
    return z


def softmax(x, mask=None, scale=1.0, softcap=None):
    return _softmax(_logits(x, mask, scale, softcap))


def log_softmax(x, mask=None, scale=1.0, softcap=None):
    z = _logits(x, mask, scale, softcap)
    m = z.amax(-1, keepdim=True)
    return z - m - torch.log(torch.exp(z - m).sum(-1, keepdim=True))


def attention(q, k, v, mask, causal, scale=None, kv_len=None):
    n = k.shape[2] if kv_len is None else kv_len
    sq, d = q.shape[2], q.shape[3]
    group = q.shape[1] // k.shape[1]
    keys = f64(k[:, :, :n]).repeat_interleave(group, dim=1)
    values = f64(v[:, :, :n]).repeat_interleave(group, dim=1)
    # The scores, as softmax's logits, are fp32 values (docs/kernels.md): beyond +-FLT_MAX they are +-inf.
    s = _as_fp32_range(f64(q) @ keys.transpose(-1, -2) * (1.0 / math.sqrt(d) if scale is None else scale))
    if mask is not None:
        m = mask if mask.shape[-1] == 1 else mask[..., :n]
        s = s.masked_fill(~m, -math.inf) if m.dtype == torch.bool else _as_fp32_range(s + f64(m))
    if causal:
        pos = torch.arange(sq) + (n - sq)
        s = s.masked_fill(torch.arange(n)[None, :] > pos[:, None], -math.inf)
    return _softmax(s) @ values


def attention_magnitude(q, k, v, mask, causal, scale=None, kv_len=None):
    """softmax(s) @ |v| and the largest |score| of each row: the scale of the rounding an fp32 kernel makes
    (its scores are off by about |s| * 2^-24, which every probability carries)."""
    out = attention(q, k, v.abs(), mask, causal, scale, kv_len)
    n = k.shape[2] if kv_len is None else kv_len
    group = q.shape[1] // k.shape[1]
    keys = f64(k[:, :, :n]).repeat_interleave(group, dim=1)
    s = f64(q) @ keys.transpose(-1, -2) * (1.0 / math.sqrt(q.shape[3]) if scale is None else scale)
    return out, s.abs().amax(-1, keepdim=True)


# ---- rope and the KV-cache append ----


def rope(q, k, cos, sin, position_ids, offset, interleaved, magnitude=False):
    """Rotation of each pair of the first R = cos.shape[-1] dims by the angle of the token's table row (row
    position_ids[b, s], or offset + s); the pairs are (2i, 2i + 1) when interleaved, else (i, i + R / 2)."""
    batch, seq = q.shape[0], q.shape[2]
    c, s = f64(cos), f64(sin)
    if c.dim() == 4:
        c, s = c[:, 0], s[:, 0]
    if c.dim() == 2:
        c, s = c.expand(batch, -1, -1), s.expand(batch, -1, -1)
    c, s = c.expand(batch, -1, -1), s.expand(batch, -1, -1)
    if position_ids is None:
        rows = torch.arange(offset, offset + seq).expand(batch, seq)
    else:
        rows = position_ids.long().reshape(-1, seq).expand(batch, seq)
    cb = torch.stack([c[b, rows[b]] for b in range(batch)])[:, None]  # [B, 1, S, R]
    sb = torch.stack([s[b, rows[b]] for b in range(batch)])[:, None]
    r = c.shape[-1]
    if interleaved:
        first, second = torch.arange(0, r, 2), torch.arange(1, r, 2)
    else:
        first, second = torch.arange(0, r // 2), torch.arange(r // 2, r)

    def apply(x):
        x = f64(x)
        out = x.clone()
        x1, x2 = x[..., first], x[..., second]
        if magnitude:  # |x1 c| + |x2 s|: the scale of an fp32 evaluation's rounding (it may cancel)
            out = out.abs()
            out[..., first] = (x1 * cb[..., first]).abs() + (x2 * sb[..., first]).abs()
            out[..., second] = (x2 * cb[..., second]).abs() + (x1 * sb[..., second]).abs()
            return out
        out[..., first] = x1 * cb[..., first] - x2 * sb[..., first]
        out[..., second] = x2 * cb[..., second] + x1 * sb[..., second]
        return out

    return apply(q), apply(k)


def kv_cache_append(k_cache, v_cache, k, v, offset):
    """The caches after the append: rows offset .. offset + S_new - 1 replaced by k and v."""
    kc, vc = f64(k_cache).clone(), f64(v_cache).clone()
    new = k.shape[2]
    kc[:, :, offset:offset + new] = f64(k)
    vc[:, :, offset:offset + new] = f64(v)
    return kc, vc


def rope_kv_append(q_out, k_out, k_cache, v_cache, q, k, v, cos, sin, position_ids, offset, interleaved,
                   cache_offset, magnitude=False):
    """q_out, k_out, k_cache, v_cache after the call: the rotated q and k, and the caches with rows cache_offset ..
    cache_offset + S - 1 replaced by the rotated k and by v. `magnitude`: rope's rounding scale for each (0 where
    the values are copies)."""
    q_rot, k_rot = rope(q, k, cos, sin, position_ids, offset, interleaved, magnitude)
    if magnitude:
        kc, vc = kv_cache_append(torch.zeros_like(f64(k_cache)), torch.zeros_like(f64(v_cache)), k_rot,
                                 torch.zeros_like(f64(v)), cache_offset)
    else:
        kc, vc = kv_cache_append(k_cache, v_cache, k_rot, v, cache_offset)
    return q_rot, k_rot, kc, vc


def attention_unspecified_rows(q, k, v, mask, causal, scale=None, kv_len=None):
    """Rows outside attention's contract (docs/kernels.md): some key's fp32 dot product q . k may overflow on the
    way (sum |q_i k_i| * max(|scale|, 1) beyond FLT_MAX), so its score is inf or NaN depending on the order of the
    sum, as in PyTorch's own fp32 matmul."""
    n = k.shape[2] if kv_len is None else kv_len
    group = q.shape[1] // k.shape[1]
    keys = f64(k[:, :, :n]).abs().repeat_interleave(group, dim=1)
    scale = 1.0 / math.sqrt(q.shape[3]) if scale is None else scale
    bound = f64(q).abs() @ keys.transpose(-1, -2) * max(abs(scale), 1.0)
    return (bound > FLT_MAX).any(-1, keepdim=True)


def quantized_weight(w_q, scales, biases, bits, group_size):
    """W (N x K, float64) from the documented packed layout (docs/quantize.md): value k of row n is bits
    [(k % (32 / bits)) * bits, +bits) of word k * bits / 32, read as unsigned; W = scale * q + bias per group."""
    per = 32 // bits
    words = w_q.to(torch.int64) % 2**32  # the uint32 the int32 holds
    k = torch.arange(w_q.shape[1] * per)
    q = (words[:, k // per] // 2 ** ((k % per) * bits)) % 2**bits
    group = k // group_size
    return q.to(torch.float64) * f64(scales)[:, group] + f64(biases)[:, group]


def quantized_linear(x, w_q, scales, biases, bias, bits, group_size):
    y = f64(x) @ quantized_weight(w_q, scales, biases, bits, group_size).t()
    return y if bias is None else y + f64(bias)


def quantized_linear_magnitude(x, w_q, scales, biases, bias, bits, group_size):
    """sum_k |x_k w_nk| (+ |bias|): the scale of an fp32 accumulation's rounding error."""
    y = f64(x).abs() @ quantized_weight(w_q, scales, biases, bits, group_size).abs().t()
    return y if bias is None else y + f64(bias).abs()
