"""Installing a swap: the module's `forward` replaced on the instance, so parameters, buffers and state-dict keys are
untouched and `restore(model)` undoes every swap exactly. MPSKERNELS_DISABLE=1 makes every swapped forward run the
original again, also for models optimised earlier."""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from .matchers import Replacement

SWAP_ATTRIBUTE = "_mpskernels_swap"
_NO_INSTANCE_FORWARD = object()


def disabled() -> bool:
    return os.environ.get("MPSKERNELS_DISABLE", "") not in ("", "0")


@dataclass
class InstalledSwap:
    kernel: str
    matched_by: str
    previous_forward: Any  # the instance's own forward before the swap, or _NO_INSTANCE_FORWARD
    calls: int = 0  # calls of the swapped forward (optimize() checks that the model's own run makes some)


def swapped_forward(module: nn.Module, replacement: Replacement, record: InstalledSwap) -> Callable[..., Any]:
    """The forward a swap installs: the replacement for the call shapes it takes, the module's own for the rest."""
    original = module.forward
    parameters = list(inspect.signature(original).parameters)
    first = parameters[0] if parameters else None

    def forward(*args: Any, **kwargs: Any) -> Any:
        record.calls += 1
        if disabled():
            return original(*args, **kwargs)
        if replacement.full_signature:
            result = replacement.forward(*args, **kwargs)
            return original(*args, **kwargs) if result is NotImplemented else result
        if len(args) == 1 and not kwargs:
            return replacement.forward(args[0])
        if not args and len(kwargs) == 1 and first in kwargs:
            return replacement.forward(kwargs[first])
        return original(*args, **kwargs)  # a call shape the kernel does not take (extra arguments)

    return forward


def install(module: nn.Module, replacement: Replacement) -> None:
    record = InstalledSwap(replacement.kernel, replacement.matched_by,
                           module.__dict__.get("forward", _NO_INSTANCE_FORWARD))
    object.__setattr__(module, "forward", swapped_forward(module, replacement, record))
    object.__setattr__(module, SWAP_ATTRIBUTE, record)


def uninstall(module: nn.Module) -> None:
    swap: InstalledSwap = module.__dict__.pop(SWAP_ATTRIBUTE)
    if swap.previous_forward is _NO_INSTANCE_FORWARD:
        module.__dict__.pop("forward", None)
    else:
        object.__setattr__(module, "forward", swap.previous_forward)


def calls(module: nn.Module) -> int:
    return module.__dict__[SWAP_ATTRIBUTE].calls


def is_swapped(module: nn.Module) -> bool:
    return SWAP_ATTRIBUTE in module.__dict__


def restore(model: nn.Module) -> nn.Module:
    """Undoes every swap optimize() made in `model`."""
    for module in model.modules():
        if is_swapped(module):
            uninstall(module)
    model.__dict__.pop("mpskernels_report", None)
    return model


def swapped_modules(model: nn.Module) -> dict[str, str]:
    """Qualified module name -> kernel, for the modules currently swapped."""
    return {name: m.__dict__[SWAP_ATTRIBUTE].kernel for name, m in model.named_modules() if is_swapped(m)}
