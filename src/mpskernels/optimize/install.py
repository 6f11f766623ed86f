"""Installing a swap: the module's `forward` replaced on the instance, so parameters, buffers and state-dict keys are
untouched and `restore(model)` undoes every swap exactly (one thing stays: a gated MLP whose gate and up projections
run as one matmul keeps their weights as the two halves of one buffer, the same parameters holding the same values;
gate_up.py). MPSKERNELS_DISABLE=1 makes every swapped forward run the
original again, also for models optimised earlier.

The installed forward is a `SwappedForward` object, not a closure, so an optimised model can be deep-copied and
pickled (torch.save): it holds its module (which copy.deepcopy's memo and pickle map to the copy's own module) and
a picklable recipe (`Replacement.rebuild`) that builds the kernel's forward again for the module it is bound to,
on the first call after a copy or a load. It runs the module's own computation instead of the kernel whenever the
kernel would compute something else or cannot take the call:

- autograd would record the call (gradients enabled and an input or a parameter requires them) and the replacement
  is not built from mpskernels' ops: a kernel pack or a Conv + BatchNorm fold runs the original computation, which
  autograd differentiates. Type and computation matches call `mpskernels.ops`, which go through the registered op
  (with its backward, derived from the reference) whenever autograd records, so they keep their kernels: a model
  in eval mode called without `torch.no_grad()` still runs them, and its gradients are exact;
- an input or parameter is not float32/float16/bfloat16 on a real device (float64, meta), or they mix dtypes;
- a module matched by its computation (confirmed by probing in one training mode) runs in the other mode;
- the replacement declines the call (returns NotImplemented: a call shape or state it does not cover).
"""

from __future__ import annotations

import inspect
import os
import types
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .matchers import Replacement

SWAP_ATTRIBUTE = "_mpskernels_swap"
KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
JIT_MESSAGE = ("mpskernels: this model has kernels swapped in by mpskernels.optimize(), which TorchScript cannot "
               "compile or trace; call mpskernels.restore(model) first (and optimize() again afterwards)")


def disabled() -> bool:
    return os.environ.get("MPSKERNELS_DISABLE", "") not in ("", "0")


@dataclass
class InstalledSwap:
    kernel: str
    matched_by: str
    previous_forward: Any  # the instance's own forward before the swap, or None
    calls: int = 0  # calls of the swapped forward (optimize() checks that the model's own run makes some)


def needs_grad(modules: list[nn.Module], args: tuple, kwargs: dict) -> bool:
    """Autograd would record this call: gradients are enabled and an input or a parameter requires them."""
    if not torch.is_grad_enabled():
        return False
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor) and value.requires_grad:
            return True
    return any(p.requires_grad for m in modules for p in m.parameters())


def unsupported_tensors(modules: list[nn.Module], args: tuple, kwargs: dict, mixed: bool = True) -> str | None:
    """Why the kernels cannot take this call's floating-point inputs and own parameters (float64, the meta device,
    mixed dtypes), or None. `mixed=False`: mixed dtypes are allowed (a replacement taking the module's whole call
    decides per op whether its tensors fit, as a routed forward does for each attention call)."""
    tensors = [v for v in (*args, *kwargs.values()) if isinstance(v, torch.Tensor)]
    tensors += [p for m in modules for p in m.parameters(recurse=False)]
    dtypes = set()
    for t in tensors:
        if t.is_floating_point():
            if t.is_meta:
                return "tensors on the meta device (no data to compute on)"
            if t.dtype not in KERNEL_DTYPES:
                return f"{str(t.dtype).replace('torch.', '')} tensors (the kernels take float32, float16, bfloat16)"
            dtypes.add(t.dtype)
    if mixed and len(dtypes) > 1:
        listed = ", ".join(sorted(str(d).replace("torch.", "") for d in dtypes))
        return f"mixed dtypes ({listed}), which the kernels do not take in one call"
    return None


class SwappedForward:
    """The forward a swap installs: the replacement for the calls it takes, the module's own for the rest."""

    def __init__(self, module: nn.Module, replacement: Replacement, record: InstalledSwap,
                 partners: tuple[nn.Module, ...] = ()) -> None:
        self.module, self.record, self.partners = module, record, partners
        self.rebuild = replacement.rebuild
        # A computation match holds only in the training mode it was confirmed in (a dropout inside, say).
        self.training = module.training if replacement.probe_shapes is not None else None
        self._replacement: Replacement | None = replacement
        # Mixed dtypes are the replacement's to judge when it takes the whole call (per op) or is PyTorch's own
        # (the folded convolution).
        self.whole_call = replacement.full_signature or replacement.matched_by == "fusion"
        # Built from mpskernels.ops (registered ops with a backward): autograd needs no fallback.
        self.differentiable = replacement.matched_by in ("type", "computation")

    # -- copies and pickles: the module maps to the copy's own; the kernel's forward is built again for it --

    def __getstate__(self) -> dict[str, Any]:
        return {"module": self.module, "record": self.record, "partners": self.partners, "rebuild": self.rebuild,
                "training": self.training, "whole_call": self.whole_call, "differentiable": self.differentiable}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._replacement = None

    def replacement(self) -> Replacement | None:
        if self._replacement is None and self.rebuild is not None:
            built = self.rebuild(self.module)
            self._replacement = built if isinstance(built, Replacement) else None
            if self._replacement is None:
                self.rebuild = None  # the copy's module no longer matches: its own forward runs
        return self._replacement

    def original(self) -> Any:
        previous = self.record.previous_forward
        return previous if previous is not None else types.MethodType(type(self.module).forward, self.module)

    def __prepare_scriptable__(self) -> Any:  # torch.jit.script asks every attribute it compiles
        raise RuntimeError(JIT_MESSAGE)

    def falls_back(self, args: tuple, kwargs: dict) -> bool:
        modules = [self.module, *self.partners]
        if self.training is not None and self.module.training != self.training:
            return True
        return (not self.differentiable and needs_grad(modules, args, kwargs)) or \
            unsupported_tensors(modules, args, kwargs, mixed=not self.whole_call) is not None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.record.calls += 1
        if torch.jit.is_tracing() or torch.jit.is_scripting():
            raise RuntimeError(JIT_MESSAGE)
        replacement = None if disabled() or self.falls_back(args, kwargs) else self.replacement()
        if replacement is None:
            return self.original()(*args, **kwargs)
        if replacement.full_signature:
            result = replacement.forward(*args, **kwargs)
        elif len(args) == 1 and not kwargs:
            result = replacement.forward(args[0])
        elif not args and len(kwargs) == 1 and self.first_parameter() in kwargs:
            result = replacement.forward(next(iter(kwargs.values())))
        else:
            result = NotImplemented  # a call shape the kernel does not take (extra arguments)
        return self.original()(*args, **kwargs) if result is NotImplemented else result

    def first_parameter(self) -> str | None:
        parameters = list(inspect.signature(self.original()).parameters)
        return parameters[0] if parameters else None


def install(module: nn.Module, replacement: Replacement, partners: tuple[nn.Module, ...] = ()) -> None:
    """`partners`: modules whose state the swap also depends on (a fused pair): the swap falls back whenever the
    rules above send any of them to its own forward, so both halves of a pair always agree."""
    record = InstalledSwap(replacement.kernel, replacement.matched_by, module.__dict__.get("forward"))
    swapped = SwappedForward(module, replacement, record, partners)
    object.__setattr__(module, "forward", swapped)
    object.__setattr__(module, SWAP_ATTRIBUTE, record)
    object.__setattr__(module, "__prepare_scriptable__", swapped.__prepare_scriptable__)


def uninstall(module: nn.Module) -> None:
    swap: InstalledSwap = module.__dict__.pop(SWAP_ATTRIBUTE)
    module.__dict__.pop("__prepare_scriptable__", None)
    if swap.previous_forward is None:
        module.__dict__.pop("forward", None)
    else:
        object.__setattr__(module, "forward", swap.previous_forward)


def calls(module: nn.Module) -> int:
    return module.__dict__[SWAP_ATTRIBUTE].calls


def is_swapped(module: nn.Module) -> bool:
    return SWAP_ATTRIBUTE in module.__dict__


def restore(model: nn.Module) -> nn.Module:
    """Undoes every swap optimize() made in `model`. A model changed in a way that cannot be undone (a module with
    a `mpskernels_not_restorable` reason: mpskernels.quantize()'s layers) is refused, naming the module."""
    for name, module in model.named_modules():
        reason = getattr(type(module), "mpskernels_not_restorable", None)
        if reason:
            raise RuntimeError(f"mpskernels.restore: cannot restore {name or 'the model'}: {reason}")
    for module in model.modules():
        if is_swapped(module):
            uninstall(module)
    model.__dict__.pop("mpskernels_report", None)
    return model


def swapped_modules(model: nn.Module) -> dict[str, str]:
    """Qualified module name -> kernel, for the modules currently swapped."""
    return {name: m.__dict__[SWAP_ATTRIBUTE].kernel for name, m in model.named_modules() if is_swapped(m)}
