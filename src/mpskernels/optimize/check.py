"""Stage 3, check on the example inputs: the model runs once with forward hooks that record what each chosen module
really receives and returns; each swap then runs on those inputs and must agree with the original. Kernel launches
are counted while it runs, so a swap whose kernel never launched (the module was not called, the call was one the
kernel does not take, the op fell back to the PyTorch reference) is reported as not launched, never as swapped."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from .. import launches
from .compare import EMPTY, agree, agree_outputs
from .config import OptimizeConfig
from .find import routed_replacement
from .install import unsupported_tensors
from .matchers import Replacement
from .plan import Call, Swap
from .report import NOT_LAUNCHED, ROLLED_BACK, SKIPPED, Report, ReportEntry
from .routes import RoutedForward, copy_arguments

FAST_PATH_LAYERS = (nn.TransformerEncoderLayer, nn.TransformerEncoder)


@torch.no_grad()
def capture(model: nn.Module, swaps: list[Swap], example: tuple[Sequence[Any], dict], keep_inputs: bool):
    """Runs the model once; records each watched module's first call (Call) and returns them with the model's output.

    Swaps taking the module's whole call run their replacement on a copy of its inputs right before the module's own
    call, so only one copy of a large argument (a KV cache holding the earlier layers) is alive at a time; the copy
    is kept only with `keep_inputs` (the timing stage replays it)."""
    watched: dict[str, nn.Module] = {}
    replays: dict[str, Replacement] = {}
    for s in swaps:
        watched[s.name] = s.module
        if s.fusion is not None:
            watched[s.fusion.second] = s.partner
        elif s.replacement.full_signature:
            replays[s.name] = s.replacement
    seen: dict[str, Call] = {}
    replaying = []  # calls made by a replay are not the model's own
    handles = []
    for name, m in watched.items():
        def before(mod, args, kwargs, _name=name):
            if _name in seen or replaying:
                return
            call = seen[_name] = Call(copy_arguments(args), copy_arguments(kwargs))
            call.unsupported = unsupported_tensors([mod], args, kwargs, mixed=_name not in replays)
            if _name in replays:
                replaying.append(_name)
                start = launches.count()
                try:
                    call.replayed = call_replacement(mod, replays[_name], call.args, call.kwargs)
                except Exception as e:  # reported as the swap's failure
                    call.replayed = e
                finally:
                    replaying.pop()
                call.launches = launches.count() - start
                if not call.launches:  # say why while the arguments are at hand
                    call.no_launch = why_no_launch(replays[_name], args, kwargs)
                if keep_inputs:
                    call.args, call.kwargs = copy_arguments(args), copy_arguments(kwargs)
                else:
                    call.args = call.kwargs = None

        def after(mod, args, kwargs, output, _name=name):
            if not replaying and seen[_name].output is None:
                seen[_name].output = output
        handles.append(m.register_forward_pre_hook(before, with_kwargs=True))
        handles.append(m.register_forward_hook(after, with_kwargs=True))
    try:
        output = model(*example[0], **example[1])
    finally:
        for h in handles:
            h.remove()
    return seen, output


def call_replacement(module: nn.Module, replacement: Replacement, args: tuple, kwargs: dict) -> Any:
    """What the swapped module would return for this call (its own forward where the kernel does not apply)."""
    if replacement.full_signature:
        result = replacement.forward(*args, **kwargs)
    elif len(args) == 1 and not kwargs:
        result = replacement.forward(args[0])
    else:
        result = NotImplemented
    return module.forward(*args, **kwargs) if result is NotImplemented else result


def check(swaps: list[Swap], captured: dict[str, Call] | None, model: nn.Module, config: OptimizeConfig,
          backend: str, report: Report) -> list[Swap]:
    """The swaps that agree with the original on the example inputs and launched their kernel there (all of them,
    unchecked, without example inputs: captured is None); the others reported."""
    kept = []
    for swap in swaps:
        swap.backend = backend
        check_one = check_fusion if swap.fusion is not None else check_module
        entry = check_one(swap, captured, config, model)
        if entry is None:
            kept.append(swap)
        else:
            report.add(entry)
    return kept


def check_fusion(swap: Swap, captured: dict[str, Call] | None, config: OptimizeConfig,
                 model: nn.Module) -> ReportEntry | None:
    f = swap.fusion
    swap.backend, swap.launches = "pytorch", None  # the folded convolution is PyTorch's own: no kernel of ours
    if captured is None:
        swap.checked = "not checked (no example inputs given)"
        return None
    if f.first not in captured or f.second not in captured:
        return ReportEntry(f.first, swap.module_type, NOT_LAUNCHED, f.kernel, "fusion",
                           "not called on the example inputs", backend="pytorch")
    swap.call, swap.partner_call = captured[f.first], captured[f.second]
    with torch.no_grad():
        try:
            got = f.forward(swap.call.args[0])
        except Exception as e:  # reported as the fold's failure, never raised out of optimize()
            return ReportEntry(f.first, swap.module_type, ROLLED_BACK, f.kernel, "fusion",
                               f"failed on the example inputs: {type(e).__name__}: {e}", backend="pytorch")
    if got is NotImplemented:
        return ReportEntry(f.first, swap.module_type, SKIPPED, f.kernel, "fusion",
                           "not folded: the pair cannot be folded for this call", backend="pytorch")
    ok, detail, swap.max_abs = agree(got, swap.partner_call.output, config.tolerance_scale)
    if not ok:
        return ReportEntry(f.first, swap.module_type, ROLLED_BACK, f.kernel, "fusion", detail, swap.max_abs,
                           backend="pytorch")
    swap.checked = f"checked on example inputs: {detail}"
    return None


def check_module(swap: Swap, captured: dict[str, Call] | None, config: OptimizeConfig,
                 model: nn.Module) -> ReportEntry | None:
    replacement, name = swap.replacement, swap.name
    if captured is None:
        swap.checked = ("not checked (no example inputs given)" if replacement.detail or
                        replacement.matched_by != "computation" else "recognised: agrees on probe inputs")
        if replacement.detail:
            swap.checked = f"{replacement.detail}; {swap.checked}"
        return None
    if name not in captured:
        return not_launched(swap, f"not called on the example inputs{fast_path_reason(model, name)}")
    call = swap.call = captured[name]
    if call.unsupported:  # the swapped forward would run the module's own forward for such calls
        return ReportEntry(name, swap.module_type, SKIPPED, replacement.kernel, replacement.matched_by,
                           f"called with {call.unsupported}", backend=swap.backend)
    if replacement.full_signature:
        got, swap.launches = call.replayed, call.launches
    else:
        start = launches.count()
        with torch.no_grad():
            try:
                got = call_replacement(swap.module, replacement, call.args, call.kwargs)
            except Exception as e:  # reported as the swap's failure
                got = e
        swap.launches = launches.count() - start
    if isinstance(got, Exception):
        return ReportEntry(name, swap.module_type, ROLLED_BACK, replacement.kernel, replacement.matched_by,
                           f"failed on the example inputs: {type(got).__name__}: {got}", backend=swap.backend)
    routes = replacement.forward.stats if isinstance(replacement.forward, RoutedForward) else None
    if routes is not None and not routes.routed:  # the module's own forward ran: nothing to swap
        return ReportEntry(name, swap.module_type, SKIPPED, detail=f"{replacement.detail}: no call on the example "
                           f"inputs could be routed: {routes.reasons()}")
    ok, detail, swap.max_abs = agree_outputs(got, call.output, config.tolerance_scale)
    if not ok:
        return ReportEntry(name, swap.module_type, ROLLED_BACK, replacement.kernel, replacement.matched_by, detail,
                           swap.max_abs, backend=swap.backend, launches=swap.launches)
    if routes is not None:
        swap.routes = f"{replacement.detail} ({routes.describe()})"
        swap.replacement = routed_replacement(replacement.forward.narrowed())
    if swap.launches == 0:
        return not_launched(swap, EMPTY if detail == EMPTY else
                            call.no_launch or why_no_launch(replacement, call.args, call.kwargs))
    swap.checked = f"checked on example inputs: {detail}"
    if replacement.detail and routes is None:  # what a computation match does, where its kernel name is not enough
        swap.checked = f"{replacement.detail}; {swap.checked}"
    return None


def not_launched(swap: Swap, reason: str) -> ReportEntry:
    return ReportEntry(swap.name, swap.module_type, NOT_LAUNCHED, swap.replacement.kernel, swap.replacement.matched_by,
                       reason, backend=swap.backend, launches=swap.launches)


def why_no_launch(replacement: Replacement, args: tuple, kwargs: dict) -> str:
    """Why the kernel did not launch on a call that was checked (the module's own forward or the reference ran)."""
    if replacement.explain is not None:
        reason = replacement.explain(args, kwargs)
        if reason:
            return reason
    if not replacement.full_signature and not (len(args) == 1 and not kwargs):
        return "called with arguments beyond the input tensor, which the kernel does not take"
    return ("the kernel did not launch on the example inputs: the op ran its PyTorch reference for them "
            "(inputs outside the kernel's constraints; the mpskernels log says which)")


def fast_path_reason(model: nn.Module, name: str) -> str:
    """Why a module inside a transformer encoder layer is not called: PyTorch's fused fast path, taken when no hooks
    are attached, in eval mode without gradients, on CPU and CUDA tensors (never on MPS: there the modules run)."""
    modules = dict(model.named_modules())
    parts = name.split(".")
    for i in range(len(parts) - 1, -1, -1):
        owner = modules.get(".".join(parts[:i]))
        if isinstance(owner, FAST_PATH_LAYERS) and not owner.training and torch.backends.mha.get_fastpath_enabled():
            return (f": its {type(owner).__name__} runs PyTorch's fused fast path (eval mode, no gradients, "
                    f"{next(owner.parameters()).device.type} tensors), which bypasses the forwards of its modules; "
                    f"that fused op does the whole layer and is left to run")
    return ""
