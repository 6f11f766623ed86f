"""Residual add + RMSNorm across a decoder's layers, in eager optimize(): one add_rms_norm launch for the two.

A decoder layer's forward adds a residual (`residual + hidden_states`) and the next thing to read the sum is an
RMSNorm: the layer's post-attention norm, the next layer's input norm, or the model's final norm. Neither the add
(in the layer's own code) nor the norm (a child module, often of another layer) can see the other in eager mode, so
the pair is learned from the example inputs and fused ahead of time:

- learn: the example call runs once under a spy that records every add made by a module's own code (its k-th add
  per call) and the modules whose first input is that very tensor. A pair is (decoder module, k) -> the first such
  module that optimize() swapped for rms_norm.
- run: the decoder module's forward runs under a TorchFunctionMode that counts its own adds; the k-th one with a
  partner computes `ops.add_rms_norm` (the sum and its norm in one launch), returns the sum, and leaves the norm
  with the partner. The partner's rms_norm forward (matchers.py, handwritten.py) takes it, instead of launching,
  only when it is called with that very tensor, unchanged since (its version counter), with the same weight and
  epsilon; in every other case it computes its own norm, so a wrong pairing costs one launch and never a value.

The norm computed by add_rms_norm is the norm of the rounded sum, as the unfused pair computes it. Other adds
(shapes that differ, grad mode with tensors that require grad, non-float tensors) run PyTorch's add.

Cost: under the mode every torch call in the layer's forward passes through Python, as in routes.RoutedForward.
"""

from __future__ import annotations

import dataclasses
import weakref
from typing import Any, Sequence

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .. import ops
from ..kernels.spec import FLOAT_DTYPES
from .functional import caller_frame, forward_codes, made_by
from .install import install, is_swapped, uninstall
from .matchers import Replacement
from .pending import PENDING, NormParameters, Pending, version
from .plan import Swap
from .report import NOT_LAUNCHED, NOT_RECOGNISED, SKIPPED, SWAPPED, Report, ReportEntry

KERNEL = "add_rms_norm"
ADDS = (torch.add, torch.Tensor.add, torch.Tensor.__add__, torch.Tensor.__radd__)


def norm_parameters(module: nn.Module) -> NormParameters | None:
    """What the module's installed rms_norm swap would compute with now (see pending.with_parameters), or None
    when it has no such swap."""
    from .install import disabled

    forward = module.__dict__.get("forward")
    replacement = forward.replacement() if hasattr(forward, "replacement") and not disabled() else None
    parameters = getattr(replacement.forward, "rms_parameters", None) if replacement is not None else None
    return parameters() if parameters is not None else None


# ---- learning the pairs on the example inputs ----


class _AddSpy(TorchFunctionMode):
    def __init__(self, stack: list, outputs: dict, seen_calls: set[str]) -> None:
        super().__init__()
        self.stack, self.outputs, self.seen_calls = stack, outputs, seen_calls
        self.codes: dict[int, frozenset] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        if func in ADDS and self.stack and isinstance(result, torch.Tensor) and _same_shaped(args):
            frame = self.stack[-1]
            name, module = frame[0], frame[1]
            codes = self.codes.setdefault(id(module), forward_codes(module))
            if name not in self.seen_calls and made_by(module, codes, caller_frame()):
                self.outputs[id(result)] = (result, name, frame[2])
                frame[2] += 1
        return result


def _same_shaped(args: tuple) -> bool:
    """Two tensors of one shape: a residual add (a bias broadcast over rows is not one add_rms_norm takes)."""
    return len(args) == 2 and all(isinstance(a, torch.Tensor) for a in args) and args[0].shape == args[1].shape


@torch.no_grad()
def learn_pairs(model: nn.Module, args: Sequence[Any], kwargs: dict) -> dict[str, dict[int, list[str]]]:
    """module name -> {k: names of the modules whose first input was the module's k-th add of its first call}."""
    from .routes import copy_arguments

    stack: list[list] = []
    outputs: dict[int, tuple] = {}
    pairs: dict[str, dict[int, list[str]]] = {}
    seen_calls: set[str] = set()
    handles = []

    def enter(name: str, module: nn.Module, a: tuple, k: dict) -> None:
        first = a[0] if a else next((v for v in k.values() if isinstance(v, torch.Tensor)), None)
        found = outputs.get(id(first)) if isinstance(first, torch.Tensor) else None
        if found is not None and found[0] is first:
            pairs.setdefault(found[1], {}).setdefault(found[2], []).append(name)
        stack.append([name, module, 0])

    def leave(module: nn.Module, a: tuple, output: Any) -> None:
        seen_calls.add(stack.pop()[0])  # later calls of a module (a loop) count their adds from 0 again

    for name, m in model.named_modules():
        handles.append(m.register_forward_pre_hook(lambda mod, a, k, _n=name: enter(_n, mod, a, k),
                                                   with_kwargs=True))
        handles.append(m.register_forward_hook(leave, always_call=True))
    try:
        with _AddSpy(stack, outputs, seen_calls):
            model(*copy_arguments(tuple(args)), **copy_arguments(kwargs))
    finally:
        for h in handles:
            h.remove()
    return pairs


# ---- the route ----


class ResidualNormRoute:
    """The module's own forward, its k-th add of two same-shaped float tensors fused with its partner norm."""

    def __init__(self, module: nn.Module, partners: dict[int, nn.Module]) -> None:
        self.module = module
        self.partners = {k: weakref.ref(p) for k, p in partners.items()}
        self.codes = forward_codes(module)
        self.original = module.forward
        self.fused = 0  # adds fused so far (the check's evidence that the route does something)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if torch.compiler.is_compiling():
            return self.original(*args, **kwargs)
        with _ResidualMode(self):
            return self.original(*args, **kwargs)

    def fuse(self, k: int, a: Any, b: Any) -> torch.Tensor | None:
        """add_rms_norm of a + b for the k-th add, with the norm handed to its partner; None: PyTorch's add."""
        ref = self.partners.get(k)
        partner = ref() if ref is not None else None
        if partner is None or not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return None
        if a.shape != b.shape or a.dtype != b.dtype or a.dtype not in FLOAT_DTYPES or a.device != b.device or \
                (torch.is_grad_enabled() and (a.requires_grad or b.requires_grad)):
            return None
        parameters = norm_parameters(partner)
        if parameters is None:
            return None
        weight, eps, key, weight_offset = parameters
        if a.is_inference() or b.is_inference():  # no version counter: a later in-place change would go unseen
            return None
        if weight is not None and (weight.dtype != a.dtype or weight.shape != a.shape[-1:] or
                                   (torch.is_grad_enabled() and weight.requires_grad)):
            return None
        normed, total = ops.add_rms_norm(a, b, weight, eps, weight_offset)
        PENDING[id(partner)] = Pending(weakref.ref(total), version(total), key, eps, normed)
        self.fused += 1
        return total


class _ResidualMode(TorchFunctionMode):
    def __init__(self, route: ResidualNormRoute) -> None:
        super().__init__()
        self.route, self.adds = route, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        # numbered as learn_pairs numbers them: the same-shaped adds of the module's own code
        if func in ADDS and not kwargs and _same_shaped(args) and \
                made_by(self.route.module, self.route.codes, caller_frame()):
            k, self.adds = self.adds, self.adds + 1
            fused = self.route.fuse(k, *args)
            if fused is not None:
                return fused
        return func(*args, **kwargs)


def partners_of(model: nn.Module, pairs: dict[str, dict[int, list[str]]]) -> dict[str, dict[int, nn.Module]]:
    """Per module, its adds whose sum an rms_norm swap normalises: k -> the first such norm module."""
    modules = dict(model.named_modules())
    out: dict[str, dict[int, nn.Module]] = {}
    for owner, adds in pairs.items():
        for k, readers in adds.items():
            norm = next((modules[r] for r in readers if norm_parameters(modules[r]) is not None), None)
            if norm is not None:
                out.setdefault(owner, {})[k] = norm
    return out


# ---- the stage: after the other swaps are installed, before the whole model's output is compared ----

WHAT = "residual add fused with the RMSNorm that reads its sum ({pairs}): one add_rms_norm launch per pair"


def install_residual_norms(model: nn.Module, config: Any, pairs: dict[str, dict[int, list[str]]],
                           report: Report, backend: str | None = None) -> list[Swap]:
    """Routes the adds of every module whose sums the rms_norm swaps normalise (`pairs`: learn_pairs on the example
    inputs); the returned swaps are installed and in the report, so the whole-model comparison can undo them."""
    partners = partners_of(model, pairs)
    modules = dict(model.named_modules())
    names = {id(m): n for n, m in modules.items()}
    swaps = []
    for name, pairs in partners.items():
        module = modules[name]
        ruled_out = config.allows(KERNEL, name)
        if ruled_out or is_swapped(module):
            if ruled_out:
                report.add(ReportEntry(name, type(module).__name__, SKIPPED, detail=ruled_out))
            continue  # a module already swapped (an attention block's route) keeps its own swap
        route = ResidualNormRoute(module, pairs)
        detail = WHAT.format(pairs=", ".join(f"add {k} -> {names[id(p)]}" for k, p in sorted(pairs.items())))
        replacement = Replacement(KERNEL, route, "computation", full_signature=True, keeps_children=True,
                                  detail=detail)
        install(module, replacement)
        swaps.append(Swap(name, module, replacement, routes=detail))
        report.entries = [e for e in report.entries if not (e.module == name and e.status == NOT_RECOGNISED)]
        report.add(ReportEntry(name, type(module).__name__, SWAPPED, KERNEL, "computation", detail, backend=backend))
    return swaps


def drop_unfused(swaps: list[Swap], report: Report) -> None:
    """Routes that fused no add on the example inputs (the model's run after installing) are taken out again."""
    for swap in swaps:
        route = swap.replacement.forward
        if not is_swapped(swap.module):
            continue  # undone by the whole-model comparison
        if route.fused == 0:
            uninstall(swap.module)
        for i, entry in enumerate(report.entries):
            if entry.module == swap.name and entry.status == SWAPPED:
                report.entries[i] = dataclasses.replace(entry, launches=route.fused) if route.fused else \
                    dataclasses.replace(entry, status=NOT_LAUNCHED,
                                        detail="no residual add was fused on the example inputs")
