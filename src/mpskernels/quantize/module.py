"""QuantizedLinear: a linear layer holding packed 4- or 8-bit weights (layout: packing.py), computed by
torch.ops.mpskernels.quantized_linear (the Metal kernels on a GPU backend, dequantise-then-matmul elsewhere)."""

from __future__ import annotations

import torch
from torch import nn

from .packing import check_format, dequantize, quantize_weight

NOT_RESTORABLE = ("the model's linear layers were quantised by mpskernels.quantize(), which replaces their float "
                  "weights by packed 4/8-bit ones in place; the original weights are gone, so restore() cannot "
                  "undo it. Keep a copy of the model (or reload it) to get the unquantised one back")


class QuantizedLinear(nn.Module):
    """y = x @ W^T + bias with W stored quantised: `qweight` (int32 words, out_features x in_features * bits / 32),
    `scales` and `biases` (out_features x in_features / group_size). All are buffers, so they follow .to(device)
    and .to(dtype) (scales and biases take the floating dtype; the words stay int32) and appear in state_dict.

    Inference only: the quantised weights are not trainable (there are no parameters); gradients do flow to the
    input, as through a frozen linear layer (the op's backward differentiates its dequantise-then-matmul
    reference).
    """

    # optimize.restore() refuses a model holding one of these, with this reason.
    mpskernels_not_restorable = NOT_RESTORABLE

    def __init__(self, in_features: int, out_features: int, bits: int = 4, group_size: int = 64,
                 bias: bool = True, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None):
        super().__init__()
        check_format(bits, group_size, "mpskernels.QuantizedLinear")
        if in_features % group_size:
            raise ValueError(f"mpskernels.QuantizedLinear: in_features {in_features} is not a multiple of "
                             f"group_size {group_size}")
        self.in_features, self.out_features = in_features, out_features
        self.bits, self.group_size = bits, group_size
        groups = in_features // group_size
        self.register_buffer("qweight", torch.zeros(out_features, in_features * bits // 32, dtype=torch.int32,
                                                    device=device))
        self.register_buffer("scales", torch.zeros(out_features, groups, dtype=dtype, device=device))
        self.register_buffer("biases", torch.zeros(out_features, groups, dtype=dtype, device=device))
        self.register_buffer("bias", torch.zeros(out_features, dtype=dtype, device=device) if bias else None)

    @classmethod
    def from_weight(cls, weight: torch.Tensor, bias: torch.Tensor | None, bits: int,
                    group_size: int) -> "QuantizedLinear":
        """From an (out_features, in_features) float weight and an optional bias, on the weight's device."""
        n, k = weight.shape
        layer = cls(k, n, bits, group_size, bias is not None, weight.dtype, weight.device)
        packed, scales, biases = quantize_weight(weight, bits, group_size)
        layer.qweight.copy_(packed)
        layer.scales.copy_(scales)
        layer.biases.copy_(biases)
        if bias is not None:
            layer.bias.copy_(bias.detach())
        return layer

    def dequantized_weight(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        return dequantize(self.qweight, self.scales, self.biases, self.bits, self.group_size, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        scales, biases, bias = self.scales, self.biases, self.bias
        if scales.dtype != dtype:  # the op computes in x's dtype: activations of another dtype than the model's
            scales, biases = scales.to(dtype), biases.to(dtype)
            bias = None if bias is None else bias.to(dtype)
        return torch.ops.mpskernels.quantized_linear(x, self.qweight, scales, biases, bias, self.bits,
                                                     self.group_size)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bits={self.bits}, "
                f"group_size={self.group_size}, bias={self.bias is not None}")
