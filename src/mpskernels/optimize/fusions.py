"""Fusions across neighbouring modules, where the graph is known: consecutive children of nn.Sequential.

Conv + BatchNorm (inference): the normalisation folds into the convolution's weight and bias, so one convolution
replaces two ops. The folded weights are computed from the modules' own parameters and buffers (never stored in
the state dict) and recomputed whenever one of them changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@dataclass(frozen=True)
class PairFusion:
    kernel: str
    first: str  # qualified name of the module whose forward does the fused work
    second: str  # qualified name of the module that becomes an identity
    forward: Callable[[torch.Tensor], torch.Tensor]


def _folded_conv(conv: nn.Module, bn: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    cache: dict[str, object] = {}

    def parameters_key() -> tuple:
        tensors = [conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var]
        return tuple((t.data_ptr(), t._version) if t is not None else None for t in tensors)

    def folded() -> tuple[torch.Tensor, torch.Tensor]:
        key = parameters_key()
        if cache.get("key") != key:
            with torch.no_grad():
                scale = torch.rsqrt(bn.running_var.float() + bn.eps)
                if bn.weight is not None:
                    scale = scale * bn.weight.float()
                shift = -bn.running_mean.float() * scale
                if bn.bias is not None:
                    shift = shift + bn.bias.float()
                if conv.bias is not None:
                    shift = shift + conv.bias.float() * scale
                shape = (-1,) + (1,) * (conv.weight.dim() - 1)
                weight = (conv.weight.float() * scale.reshape(shape)).to(conv.weight.dtype)
                cache.update(key=key, weight=weight, bias=shift.to(conv.weight.dtype))
        return cache["weight"], cache["bias"]

    def forward(x: torch.Tensor) -> torch.Tensor:
        weight, bias = folded()
        return conv._conv_forward(x, weight, bias)

    return forward


def _foldable(conv: nn.Module, bn: nn.Module) -> str | None:
    """Why this Conv + BatchNorm pair cannot be folded, or None."""
    if bn.training or not bn.track_running_stats or bn.running_mean is None:
        return "the BatchNorm uses batch statistics (training mode or no running stats)"
    if conv.weight.shape[0] != bn.num_features:
        return "the BatchNorm's features do not match the convolution's output channels"
    if conv.padding_mode != "zeros":
        return f"padding mode {conv.padding_mode!r}"
    return None


def sequential_fusions(model: nn.Module) -> tuple[list[PairFusion], list[tuple[str, str]]]:
    """(fusions, (module, reason) for pairs that could not be fused) over every nn.Sequential in the model."""
    fusions, refused = [], []
    for prefix, container in model.named_modules():
        if not isinstance(container, nn.Sequential):
            continue
        names = list(container._modules)
        for a, b in zip(names, names[1:]):
            first, second = container._modules[a], container._modules[b]
            if not (isinstance(first, CONVS) and isinstance(second, BATCH_NORMS)):
                continue
            qualified = [f"{prefix}.{n}" if prefix else n for n in (a, b)]
            reason = _foldable(first, second)
            if reason:
                refused.append((qualified[1], reason))
                continue
            fusions.append(PairFusion("fold_conv_batchnorm", qualified[0], qualified[1], _folded_conv(first, second)))
    return fusions, refused
