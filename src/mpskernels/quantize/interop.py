"""Loading int4 weights quantised by torchao's int4 weight-only workflow (docs/quantize.md, "torchao").

torchao's asymmetric int4 (tinygemm convention, `ZeroPointDomain.FLOAT`) stores per group of `group_size` values
along K an unsigned q in [0, 15], a scale s and a floating zero point z, and dequantises as

    W = (q - 8) * s + z            (8 = (quant_min + quant_max + 1) / 2, torchao's mid point)

which is our affine form W = s * q + b with b = z - 8 s. The integer zero-point domain (`ZeroPointDomain.INT`)
dequantises as W = (q - zp) * s, i.e. b = -zp * s. Only the plain (unpacked) tensors are taken: the packed layouts
(`tile_packed_to_4d` for the CUDA tinygemm kernel, the CPU `_convert_weight_to_int4pack_for_cpu` layout, fbgemm's
preshuffled one) are private to their kernels and are unpacked by torchao itself (`get_plain()` of the weight's
tensor implementation) before they come here.
"""

from __future__ import annotations

import torch

from .module import QuantizedLinear
from .packing import GROUP_SIZES, pack

TORCHAO_INT4_MID_POINT = 8


def from_torchao_int4(int_data: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, group_size: int,
                      bias: torch.Tensor | None = None, zero_point_domain: str = "float") -> QuantizedLinear:
    """A QuantizedLinear (4 bits) from torchao's plain int4 tensors: int_data (out_features, in_features) holding
    0..15, scale and zero_point (out_features, in_features / group_size) as `get_plain()` returns them (torchao's
    version-2 Int4Tensor stores them transposed: pass `.t()`). The scales and biases keep scale's dtype."""
    where = "mpskernels.quantize.from_torchao_int4"
    if group_size not in GROUP_SIZES:
        raise ValueError(f"{where}: group_size must be one of {GROUP_SIZES} (the kernels' group sizes), got "
                         f"{group_size}")
    if int_data.dim() != 2 or int_data.is_floating_point():
        raise ValueError(f"{where}: int_data must be a 2-D integer tensor (out_features, in_features), got "
                         f"{tuple(int_data.shape)} {int_data.dtype}")
    n, k = int_data.shape
    if k % group_size:
        raise ValueError(f"{where}: in_features {k} is not a multiple of group_size {group_size}")
    expected = (n, k // group_size)
    for name, t in (("scale", scale), ("zero_point", zero_point)):
        if tuple(t.shape) != expected:
            raise ValueError(f"{where}: {name} must have shape {expected} (out_features, groups), got "
                             f"{tuple(t.shape)}; torchao's Int4Tensor stores (groups, out_features): pass .t()")
    if int(int_data.min()) < 0 or int(int_data.max()) > 15:
        raise ValueError(f"{where}: int_data must hold unsigned 4-bit values 0..15 (torchao's uint4 range)")
    s = scale.to(torch.float64)
    if zero_point_domain == "float":
        b = zero_point.to(torch.float64) - TORCHAO_INT4_MID_POINT * s
    elif zero_point_domain == "int":
        b = -zero_point.to(torch.float64) * s
    else:
        raise ValueError(f"{where}: zero_point_domain must be 'float' (tinygemm) or 'int', got {zero_point_domain!r}")
    layer = QuantizedLinear(k, n, 4, group_size, bias is not None, scale.dtype, scale.device)
    layer.qweight.copy_(pack(int_data.to(torch.int64), 4))
    layer.scales.copy_(scale)
    layer.biases.copy_(b.to(scale.dtype))
    if bias is not None:
        layer.bias.copy_(bias)
    return layer
