"""optimize(model): swap mpskernels' kernels into a model where they are correct and faster, and report what ran.

The pipeline, one stage per module of this package:

    find candidates (find.py) -> confirm by probing (probe.py) -> check on the example inputs (check.py)
    -> time against the original (timing.py, cache.py) -> install (install.py) -> report (apply.py, report.py)

Swaps replace a module's `forward` on the instance (parameters, buffers and state-dict keys are untouched), so
`restore(model)` undoes them exactly. MPSKERNELS_DISABLE=1 turns everything off, also for models optimised earlier.
docs/optimize.md explains the rules.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ..runtime import BackendError, choose_backend
from .apply import check_model_output, drop_uncalled, earlier_swaps, install_swaps, kept_state, sort_entries
from .cache import DecisionCache
from .check import capture, check
from .config import OptimizeConfig
from .decoder import drop_unfused, install_residual_norms, learn_pairs
from .find import find_candidates, load_packs
from .fusions import sequential_fusions
from .install import disabled, is_swapped, restore, swapped_modules
from .matchers import Replacement
from .plan import Swap
from .probe import confirm
from .progress import Progress
from .report import SKIPPED, Report, ReportEntry
from .routes import copy_arguments

__all__ = ["OptimizeConfig", "Report", "optimize", "restore", "swapped_modules"]

FIRST_CALL = "first_call"
NO_BACKEND = ("no kernel backend runs on {device} tensors, so the kernels would run their PyTorch reference, "
              "which is not faster than PyTorch's own ops (set MPSKERNELS_BACKEND=emulator to try the swaps on the "
              "CPU emulator)")


def optimize(model: nn.Module, config: OptimizeConfig | None = None, *,
             example_inputs: Sequence[Any] | str | None = None, example_kwargs: dict[str, Any] | None = None,
             verify: bool = True, kernel_packs: Sequence[Any] = ()) -> nn.Module:
    """Swaps faster kernels into `model` in place and returns it, with `model.mpskernels_report` attached.

    example_inputs: arguments of one forward call (example_kwargs: its keyword arguments). With them (and
    verify=True) every swap is checked on the inputs its module really receives and rolled back if its output
    disagrees or its kernel never launched; where a GPU backend runs it is also timed there against the module it
    replaces and kept only if faster (OptimizeConfig.timing); the model's whole output is then compared with the
    original's. example_inputs="first_call" defers all of it to the model's first call and uses that call's
    arguments. Modules recognised by their computation are always checked on probe inputs.

    kernel_packs: generated kernels (KernelPack objects or pack folders, see mpskernels.packs); a module of the
    class a pack was generated for is swapped for it ahead of the built-in kernels, under the same checks.
    """
    if isinstance(example_inputs, str):
        if example_inputs != FIRST_CALL:
            raise ValueError(f"example_inputs must be a sequence of arguments or {FIRST_CALL!r}, "
                             f"got {example_inputs!r}")
        return _optimize_on_first_call(model, config, verify, kernel_packs)
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)  # one tensor is the call's one argument, not a batch of arguments
    if example_inputs is None and example_kwargs is not None:
        example_inputs = ()  # keyword arguments alone are a whole call (the usual one for Hugging Face models)
    report = Report()
    report.entries = earlier_swaps(model)  # a second optimize() keeps what the first swapped in the report
    object.__setattr__(model, "mpskernels_report", report)
    if disabled():
        report.disabled = True
        return model
    from .timing import time_swaps, timing_mode  # here: mpskernels.bench (the harness's timing) imports optimize

    config = config or OptimizeConfig()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    backend = _backend(device, report)
    if backend is False:
        return model
    example = (tuple(example_inputs), example_kwargs or {}) if example_inputs is not None else None
    checking = example if verify else None
    timed, report.timing = timing_mode(config.timing, backend.name if backend else "reference")
    timed = timed and backend is not None and checking is not None

    with kept_state(model):  # the example calls must not move BatchNorm statistics (or any buffer)
        found = find_candidates(model, config, load_packs(kernel_packs), example)
        swaps = confirm(found, config, device, report)
        swaps += _fusions(model, config, {s.name for s in swaps}, report)
        # the whole-model check runs on a copy taken now: the capture's run may change the example's arguments (a KV
        # cache grows, a sliding window drops its oldest token), and a second run on them computes something else
        output_example = (copy_arguments(tuple(checking[0])), copy_arguments(checking[1])) if checking else None
        captured, original_output = capture(model, swaps, checking, keep_inputs=timed) if checking else (None, None)
        swaps = check(swaps, captured, model, config, backend.name if backend else "reference", report)
        if timed:
            swaps = time_swaps(swaps, backend, config.timing == "always", DecisionCache(), Progress(), report)
        # learned before installing: the spy's run must not count as a call of the swaps (drop_uncalled)
        pairs = learn_pairs(model, *checking) if checking and any(s.replacement.kernel == "rms_norm"
                                                                   for s in swaps) else {}
        install_swaps(swaps, report)
        residual = install_residual_norms(model, config, pairs, report, backend.name if backend else "reference")
        if original_output is not None:
            check_model_output(model, output_example, original_output, config, report, swaps + residual)
            drop_uncalled(model, swaps, report)
            drop_unfused(residual, report)
    sort_entries(model, report)
    return model


def _backend(device: torch.device, report: Report) -> Any:
    """The backend that runs the kernels on the model's device (None: the reference, asked for by name), or False
    when there is none: then the report says why and nothing is swapped."""
    try:
        backend, explicit = choose_backend(device)
    except BackendError as e:
        report.not_run = str(e)
        return False
    if backend is None and not explicit:
        report.not_run = NO_BACKEND.format(device=device.type)
        return False
    return backend


def _fusions(model: nn.Module, config: OptimizeConfig, chosen: set[str], report: Report) -> list[Swap]:
    """Conv + BatchNorm pairs of nn.Sequential containers, as swaps of their first module."""
    modules = dict(model.named_modules())
    fusions, refused = sequential_fusions(model)
    for name, reason in refused:
        report.add(ReportEntry(name, type(modules[name]).__name__, SKIPPED, detail=f"not folded: {reason}"))
    planned = []
    for f in fusions:
        ruled_out = config.allows(f.kernel, f.first) or config.allows(f.kernel, f.second)
        if ruled_out:
            report.add(ReportEntry(f.second, type(modules[f.second]).__name__, SKIPPED, detail=ruled_out))
        elif not is_swapped(modules[f.first]) and f.first not in chosen and f.second not in chosen:
            planned.append(Swap(f.first, modules[f.first], Replacement(f.kernel, f.forward, "fusion"), fusion=f,
                                partner=modules[f.second]))
    return planned


def _optimize_on_first_call(model: nn.Module, config: OptimizeConfig | None, verify: bool,
                            kernel_packs: Sequence[Any]) -> nn.Module:
    """Runs optimize() when the model is first called, with that call's arguments as the example inputs."""
    pending = Report()
    pending.output_check = "pending: optimize() runs on the model's first call"
    object.__setattr__(model, "mpskernels_report", pending)

    def on_first_call(module: nn.Module, args: tuple, kwargs: dict) -> None:
        handle.remove()
        clone = lambda v: v.clone() if isinstance(v, torch.Tensor) else v  # noqa: E731
        optimize(module, config, example_inputs=tuple(clone(a) for a in args),
                 example_kwargs={k: clone(v) for k, v in kwargs.items()}, verify=verify, kernel_packs=kernel_packs)

    handle = model.register_forward_pre_hook(on_first_call, with_kwargs=True)
    return model
