"""Weight-only int4 / int8 quantisation of linear layers: `mpskernels.quantize(model, bits=4, group_size=64)`.

packing.py: the affine per-group format and its packed layout; module.py: QuantizedLinear; convert.py: quantize()
and its report. The kernels are the `quantized_linear` family (src/mpskernels/kernels/quantized.py,
metal/quantized.metal). docs/quantize.md describes all of it.
"""

from .convert import LayerReport, QuantizeReport, quantize
from .interop import from_torchao_int4
from .module import QuantizedLinear
from .packing import dequantize, pack, quantize_weight, unpack

__all__ = ["LayerReport", "QuantizeReport", "QuantizedLinear", "dequantize", "from_torchao_int4", "pack", "quantize", "quantize_weight",
           "unpack"]
