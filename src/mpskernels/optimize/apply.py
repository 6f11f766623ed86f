"""Stages 5 and 6, install and report: the swaps that survived are installed on their modules, and every one gets
its report line (the check, what was routed, the timing), followed by the whole model's output check."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from .compare import agree, tensors_in
from .config import OptimizeConfig
from .check import fast_path_reason
from .fusions import fold_replacement, folded_away_replacement
from .install import calls, install, is_swapped, uninstall
from .matchers import Replacement
from .plan import Swap
from .report import NOT_LAUNCHED, ROLLED_BACK, SWAPPED, Report, ReportEntry


def install_swaps(swaps: list[Swap], report: Report) -> None:
    for swap in swaps:
        timing = swap.timing
        times = {"before_us": timing.before_us, "after_us": timing.after_us} if timing else {}
        said = [swap.routes, swap.checked,
                (timing.reason + (" (cached decision)" if timing.cached else "")) if timing else swap.timing_note]
        if swap.fusion is not None:
            f = swap.fusion
            install(swap.module, fold_replacement(swap.partner, swap.module), partners=(swap.partner,))
            install(swap.partner, folded_away_replacement(swap.module, swap.partner), partners=(swap.module,))
            what = f"{swap.module_type} + {type(swap.partner).__name__} folded into one convolution"
            report.add(ReportEntry(f.first, swap.module_type, SWAPPED, f.kernel, "fusion", _join([what, *said]),
                                   swap.max_abs, backend=swap.backend, **times))
            report.add(ReportEntry(f.second, type(swap.partner).__name__, SWAPPED, f.kernel, "fusion",
                                   f"folded into {f.first}", backend=swap.backend))
            continue
        install(swap.module, swap.replacement)
        report.add(ReportEntry(swap.name, swap.module_type, SWAPPED, swap.replacement.kernel,
                               swap.replacement.matched_by, _join(said), swap.max_abs, backend=swap.backend,
                               launches=swap.launches, **times))


def _join(parts: Sequence[str]) -> str:
    return "; ".join(p for p in parts if p)


@torch.no_grad()
def check_model_output(model: nn.Module, example: tuple[Sequence[Any], dict], original_output: Any,
                       config: OptimizeConfig, report: Report, swaps: list[Swap]) -> None:
    """The whole model's output with every swap installed, against the original's (errors add up through the
    layers, so the tolerance grows with the number of swaps)."""
    new_output = model(*example[0], **example[1])
    pairs = list(zip(tensors_in(new_output), tensors_in(original_output)))
    if pairs:
        scale = config.tolerance_scale * max(1, len(report.swapped))
        checks = [agree(got, want, scale) for got, want in pairs]
        failed = [detail for ok, detail, _ in checks if not ok]
        report.output_check = failed[0] if failed else checks[0][1]
        if failed:
            undo_all(model, swaps, report, failed[0])


def undo_all(model: nn.Module, swaps: list[Swap], report: Report, why: str) -> None:
    """Every swap undone: each agreed with its module, yet the model computes something else with them (a caller
    reading an input that the original module changed in place, say), so none of them can be trusted."""
    modules = dict(model.named_modules())
    ours = {s.name for s in swaps} | {s.fusion.second for s in swaps if s.fusion is not None}
    for i, entry in enumerate(report.entries):
        if entry.status == SWAPPED and entry.module in ours:
            if is_swapped(modules[entry.module]):
                uninstall(modules[entry.module])
            detail = (f"undone: the whole model's output with the swaps disagrees with the original's ({why}); "
                      f"the model is left as it was")
            report.entries[i] = dataclasses.replace(entry, status=ROLLED_BACK, detail=detail)
    report.output_check = f"{why}: every swap undone, the model is unchanged"


def earlier_swaps(model: nn.Module) -> list[ReportEntry]:
    """The report lines of modules an earlier optimize() swapped that are still swapped (this run leaves them)."""
    earlier = model.__dict__.get("mpskernels_report")
    if not isinstance(earlier, Report):
        return []
    modules = dict(model.named_modules())
    return [e for e in earlier.entries
            if e.status == SWAPPED and e.module in modules and is_swapped(modules[e.module])]


@contextlib.contextmanager
def kept_state(model: nn.Module) -> Iterator[None]:
    """The model's buffers (BatchNorm's running statistics and batch count) as they were before optimize() ran its
    example and probe calls: a model in training mode updates them on every forward."""
    saved = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)


def drop_uncalled(model: nn.Module, swaps: list[Swap], report: Report) -> None:
    """Swaps that the model's own run (the output check, without optimize()'s hooks) never called are undone and
    reported as not launched: a transformer encoder layer takes PyTorch's fused fast path once no hooks are attached
    (on CPU and CUDA tensors, in eval mode without gradients), bypassing its modules' forwards."""
    uncalled = {s.name: s for s in swaps
                if s.fusion is None and s.launches and is_swapped(s.module) and calls(s.module) == 0}
    if not uncalled:
        return
    for i, entry in enumerate(report.entries):
        swap = uncalled.get(entry.module)
        if swap is not None and entry.status == SWAPPED:
            uninstall(swap.module)
            why = fast_path_reason(model, swap.name) or ": the model's own forward does not call it"
            detail = f"checked, but not called when the model runs without optimize()'s hooks{why}"
            report.entries[i] = ReportEntry(entry.module, entry.module_type, NOT_LAUNCHED, entry.kernel,
                                            entry.matched_by, detail, entry.max_abs_error, entry.backend,
                                            entry.launches)


def sort_entries(model: nn.Module, report: Report) -> None:
    order = {name: i for i, (name, _) in enumerate(model.named_modules())}
    report.entries.sort(key=lambda e: order.get(e.module, len(order)))
