"""Int4 weights in torchao's plain weight-only form (tinygemm convention: W = (q - 8) * scale + zero, zero in the
float domain; or an integer zero point: W = (q - zp) * scale) load into QuantizedLinear and compute the same
linear layer. torchao is not installed here: its tensors are built from its documented formulas."""

import pytest
import torch

from mpskernels.quantize import from_torchao_int4


def tinygemm_quantised(w, group_size):
    """(q, scale, zero) as torchao's tinygemm parameters: scale = (max - min) / 15, zero = min + 8 * scale,
    q = clamp(round((w - min) / scale), 0, 15)."""
    n, k = w.shape
    g = w.reshape(n, k // group_size, group_size)
    lo, hi = g.amin(-1), g.amax(-1)
    scale = ((hi - lo) / 15).clamp_min(torch.finfo(w.dtype).eps)
    zero = lo + 8 * scale
    q = torch.clamp(torch.round((g - lo[..., None]) / scale[..., None]), 0, 15).to(torch.int32).reshape(n, k)
    return q, scale, zero


def tinygemm_dequantised(q, scale, zero, group_size):
    s, z = (t.double().repeat_interleave(group_size, -1) for t in (scale, zero))
    return (q.double() - 8) * s + z


@pytest.mark.parametrize("group_size", [32, 64, 128])
def test_tinygemm_float_zero_points_give_torchaos_weights(group_size):
    torch.manual_seed(group_size)
    w = torch.randn(24, 256) * 0.05
    q, scale, zero = tinygemm_quantised(w, group_size)
    bias = torch.randn(24)
    layer = from_torchao_int4(q, scale, zero, group_size, bias)
    want = tinygemm_dequantised(q, scale, zero, group_size)
    # fp32 scales and biases: b = z - 8 s rounded once to fp32.
    torch.testing.assert_close(layer.dequantized_weight(torch.float64), want, rtol=0, atol=1e-7)
    x = torch.randn(3, 256)
    torch.testing.assert_close(layer(x), (x.double() @ want.t() + bias.double()).float(), rtol=1e-5, atol=1e-5)


def test_integer_zero_points():
    q = torch.randint(0, 16, (4, 64))
    scale = torch.rand(4, 2) * 0.1
    zp = torch.randint(0, 16, (4, 2))
    layer = from_torchao_int4(q, scale, zp, 32, zero_point_domain="int")
    want = (q.double() - zp.double().repeat_interleave(32, -1)) * scale.double().repeat_interleave(32, -1)
    torch.testing.assert_close(layer.dequantized_weight(torch.float64), want, rtol=0, atol=1e-7)


@pytest.mark.parametrize("args, pattern", [
    ((torch.randint(0, 16, (4, 64)), torch.rand(2, 4), torch.rand(2, 4), 32), r"scale must have shape \(4, 2\).*\.t\(\)"),
    ((torch.randint(0, 16, (4, 64)), torch.rand(4, 4), torch.rand(4, 4), 16), r"group_size must be one of \(32, 64, 128\)"),
    ((torch.randint(-8, 8, (4, 64)), torch.rand(4, 2), torch.rand(4, 2), 32), r"int_data must hold unsigned 4-bit values 0\.\.15"),
    ((torch.rand(4, 64), torch.rand(4, 2), torch.rand(4, 2), 32), r"int_data must be a 2-D integer tensor"),
])
def test_bad_torchao_tensors_are_refused(args, pattern):
    with pytest.raises(ValueError, match=rf"mpskernels\.quantize\.from_torchao_int4: {pattern}"):
        from_torchao_int4(*args)
