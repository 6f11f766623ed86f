"""quantize(model): replaces linear layers by QuantizedLinear in place and reports every layer it looked at."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Iterable

import torch
from torch import nn

from .module import QuantizedLinear
from .packing import check_format, packed_bytes

KEPT_BY_DEFAULT = ("lm_head",)  # output projections: kept unless `include` names them (accuracy of the logits)


@dataclass
class LayerReport:
    name: str
    kind: str  # Linear, Conv1D, Embedding, ...
    shape: tuple[int, int]  # (out_features, in_features)
    quantized: bool
    reason: str = ""  # why it was skipped
    max_abs_error: float = 0.0  # of the dequantised weight against the original, in fp32 and above
    rel_frobenius_error: float = 0.0  # ||W_q - W||_F / ||W||_F
    bytes_before: int = 0
    bytes_after: int = 0


@dataclass
class QuantizeReport:
    bits: int
    group_size: int
    layers: list[LayerReport] = field(default_factory=list)

    @property
    def quantized(self) -> list[LayerReport]:
        return [r for r in self.layers if r.quantized]

    @property
    def skipped(self) -> list[LayerReport]:
        return [r for r in self.layers if not r.quantized]

    @property
    def bytes_saved(self) -> int:
        return sum(r.bytes_before - r.bytes_after for r in self.quantized)

    def __str__(self) -> str:
        lines = [f"mpskernels.quantize: {len(self.quantized)} layers at {self.bits} bits, group size "
                 f"{self.group_size}; {len(self.skipped)} kept; weights {_mib(sum(r.bytes_before for r in self.quantized))}"
                 f" -> {_mib(sum(r.bytes_after for r in self.quantized))} ({_mib(self.bytes_saved)} saved)"]
        for r in self.layers:
            shape = f"{r.shape[0]}x{r.shape[1]}"
            if r.quantized:
                lines.append(f"  {r.name:<40} {r.kind:<9} {shape:>11}  max|dW| {r.max_abs_error:.3g}  "
                             f"rel ||dW||_F {r.rel_frobenius_error:.3g}")
            else:
                lines.append(f"  {r.name:<40} {r.kind:<9} {shape:>11}  kept: {r.reason}")
        return "\n".join(lines)


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB"


def _matches(name: str, patterns: Iterable[str] | None) -> bool:
    return patterns is not None and any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _linear_weight(module: nn.Module) -> tuple[str, torch.Tensor, torch.Tensor | None] | None:
    """(kind, weight as (out_features, in_features), bias) of a layer quantize() can replace, else None."""
    if isinstance(module, nn.Linear):
        return "Linear", module.weight, module.bias
    # Hugging Face's Conv1D (GPT-2): y = x @ weight + bias with weight (in_features, out_features).
    if type(module).__name__ == "Conv1D" and hasattr(module, "nf") and getattr(module, "weight", None) is not None:
        return "Conv1D", module.weight.t(), module.bias
    return None


def _skip_reason(name: str, module: nn.Module, weight: torch.Tensor, group_size: int, included: bool,
                 tied: set[int]) -> str | None:
    out_features, in_features = weight.shape
    if name.split(".")[-1] in KEPT_BY_DEFAULT and not included:
        return "output projection kept in full precision (name it in include= to quantise it)"
    if id(module.weight) in tied and not included:
        return "weight tied to an embedding (name it in include= to quantise it; the embedding stays float)"
    if weight.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        return f"weight dtype {weight.dtype} (the kernels take float32, float16 and bfloat16)"
    if in_features % group_size:
        return f"in_features {in_features} is not a multiple of group_size {group_size}"
    if weight.device.type == "meta":
        return "weight on the meta device (no values to quantise)"
    return None


def _errors(original: torch.Tensor, layer: QuantizedLinear) -> tuple[float, float]:
    w = original.detach().to(torch.float64)
    diff = layer.dequantized_weight(torch.float64) - w
    norm = float(torch.linalg.vector_norm(w))
    return float(diff.abs().max()) if diff.numel() else 0.0, float(torch.linalg.vector_norm(diff)) / (norm or 1.0)


def _set_child(model: nn.Module, name: str, child: nn.Module) -> None:
    parent_name, _, attribute = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attribute, child)


def quantize(model: nn.Module, bits: int = 4, group_size: int = 64, include: Iterable[str] | None = None,
             exclude: Iterable[str] | None = None, verbose: bool = False) -> nn.Module:
    """Replaces the model's nn.Linear layers (and Hugging Face Conv1D) by QuantizedLinear, in place; returns the
    model with `model.mpskernels_quantize_report` (a QuantizeReport) attached.

    bits: 4 or 8; group_size: 32, 64 or 128 values along in_features share a scale and a bias.
    include: qualified module names or fnmatch patterns ("model.layers.*.mlp.*"); when given, only those are
    quantised, and an output projection (`lm_head`) or a layer whose weight is tied to an embedding is quantised
    only when named here. exclude: names or patterns never quantised (wins over include).
    Layers the kernels cannot take are kept, with the reason in the report. Embeddings are always kept.
    Quantisation cannot be undone: mpskernels.restore() refuses a quantised model.
    """
    check_format(bits, group_size)
    include, exclude = (None if include is None else tuple(include)), tuple(exclude or ())
    from ..optimize.install import swapped_modules  # here: optimize's package imports much of mpskernels

    swapped = swapped_modules(model)
    if swapped:
        raise RuntimeError(f"mpskernels.quantize: the model has kernels swapped in by optimize() "
                           f"({', '.join(sorted(swapped))}); call quantize() first, or restore() before it")
    tied = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    report = QuantizeReport(bits, group_size)
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Embedding) and _matches(name, include):
            report.layers.append(LayerReport(name, "Embedding", (module.num_embeddings, module.embedding_dim),
                                             False, "embeddings are not quantised (no quantised lookup kernel)"))
            continue
        found = _linear_weight(module)
        if found is None or _matches(name, exclude) or (include is not None and not _matches(name, include)):
            if found is not None and (_matches(name, exclude) or include is not None):
                report.layers.append(LayerReport(name, found[0], tuple(found[1].shape), False,
                                                 "excluded" if _matches(name, exclude) else "not in include"))
            continue
        kind, weight, bias = found
        reason = _skip_reason(name, module, weight, group_size, include is not None, tied)
        entry = LayerReport(name, kind, tuple(weight.shape), reason is None, reason or "")
        report.layers.append(entry)
        if reason is not None:
            continue
        layer = QuantizedLinear.from_weight(weight.detach(), None if bias is None else bias.detach(), bits,
                                            group_size)
        entry.max_abs_error, entry.rel_frobenius_error = _errors(weight, layer)
        entry.bytes_before = weight.numel() * weight.element_size()
        entry.bytes_after = packed_bytes(*weight.shape, bits, group_size, layer.scales.dtype)
        layer.train(module.training)
        _set_child(model, name, layer)
    object.__setattr__(model, "mpskernels_quantize_report", report)
    if verbose:
        print(report)
    return model
