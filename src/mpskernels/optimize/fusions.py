"""Fusions across neighbouring modules, where the graph is known: consecutive children of nn.Sequential.

Conv + BatchNorm (inference): the normalisation folds into the convolution's weight and bias, so one convolution
replaces two ops. The folded weights are computed from the modules' own parameters and buffers (never stored in
the state dict) and recomputed at every call, so edits to them after optimize() are always seen.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from .matchers import Replacement

FOLD = "fold_conv_batchnorm"
CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@dataclass(frozen=True)
class PairFusion:
    kernel: str
    first: str  # qualified name of the module whose forward does the fused work
    second: str  # qualified name of the module that becomes an identity
    forward: Callable[[torch.Tensor], torch.Tensor]


def _folded_conv(conv: nn.Module, bn: nn.Module) -> Callable[[torch.Tensor], Any]:
    """The convolution with the normalisation folded in, computed from the modules' state at every call: a cache
    keyed on the tensors' versions would miss edits through `.data` (which bump no version) and a changed eps.
    While the pair cannot be folded (the BatchNorm back in training mode), it declines: both modules run their own."""

    def forward(x: torch.Tensor) -> Any:
        if _foldable(conv, bn):
            return NotImplemented
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
        return conv._conv_forward(x, weight, shift.to(conv.weight.dtype))

    return forward


def _folded_away(conv: nn.Module, bn: nn.Module) -> Callable[[torch.Tensor], Any]:
    """The BatchNorm's forward once folded into the convolution before it: the identity, while the pair folds."""
    return lambda x: NotImplemented if _foldable(conv, bn) else x


def fold_replacement(bn: nn.Module, conv: nn.Module) -> Replacement:
    """The convolution's replacement (rebuilt for a copy of the pair: a picklable partial over the BatchNorm)."""
    return Replacement(FOLD, _folded_conv(conv, bn), "fusion", rebuild=functools.partial(fold_replacement, bn))


def folded_away_replacement(conv: nn.Module, bn: nn.Module) -> Replacement:
    return Replacement(FOLD, _folded_away(conv, bn), "fusion",
                       rebuild=functools.partial(folded_away_replacement, conv))


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
            fusions.append(PairFusion(FOLD, qualified[0], qualified[1], _folded_conv(first, second)))
    return fusions, refused
