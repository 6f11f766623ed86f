"""optimize(model): swap mpskernels' kernels into a model, check every swap, report what happened.

Swaps replace a module's `forward` on the instance (parameters, buffers and state-dict keys are untouched), so
`restore(model)` undoes them exactly. With example inputs, every swapped module's output is compared with the
original module's on the inputs it really receives, and a swap that disagrees is rolled back. MPSKERNELS_DISABLE=1
turns everything off, also for models optimised earlier.
"""

from __future__ import annotations

import functools
import inspect
import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ..tolerances import TOLERANCES, Tolerance, compare
from .config import OptimizeConfig
from .fusions import sequential_fusions
from .matchers import Replacement, is_torch_builtin, candidates, find_replacement
from .report import ROLLED_BACK, SKIPPED, SWAPPED, Report, ReportEntry
from .routes import RoutedForward, attention_calls, calls_sdpa_in_code, copy_arguments, routed_forward

__all__ = ["OptimizeConfig", "Report", "optimize", "restore"]

_SWAP_ATTRIBUTE = "_mpskernels_swap"
_NO_INSTANCE_FORWARD = object()


def disabled() -> bool:
    return os.environ.get("MPSKERNELS_DISABLE", "") not in ("", "0")


@dataclass
class _Swap:
    kernel: str
    matched_by: str
    previous_forward: Any  # the instance's own forward before the swap, or _NO_INSTANCE_FORWARD


def _swapped_forward(module: nn.Module, replacement: Replacement) -> Callable[..., Any]:
    original = module.forward
    parameters = list(inspect.signature(original).parameters)
    first = parameters[0] if parameters else None

    def forward(*args: Any, **kwargs: Any) -> Any:
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


def _install(module: nn.Module, replacement: Replacement) -> None:
    previous = module.__dict__.get("forward", _NO_INSTANCE_FORWARD)
    forward = _swapped_forward(module, replacement)
    object.__setattr__(module, "forward", forward)
    object.__setattr__(module, _SWAP_ATTRIBUTE, _Swap(replacement.kernel, replacement.matched_by, previous))


def _uninstall(module: nn.Module) -> None:
    swap: _Swap = module.__dict__.pop(_SWAP_ATTRIBUTE)
    if swap.previous_forward is _NO_INSTANCE_FORWARD:
        module.__dict__.pop("forward", None)
    else:
        object.__setattr__(module, "forward", swap.previous_forward)


def restore(model: nn.Module) -> nn.Module:
    """Undoes every swap optimize() made in `model`."""
    for module in model.modules():
        if _SWAP_ATTRIBUTE in module.__dict__:
            _uninstall(module)
    model.__dict__.pop("mpskernels_report", None)
    return model


def swapped_modules(model: nn.Module) -> dict[str, str]:
    """Qualified module name -> kernel, for the modules currently swapped."""
    return {name: m.__dict__[_SWAP_ATTRIBUTE].kernel for name, m in model.named_modules()
            if _SWAP_ATTRIBUTE in m.__dict__}


# ---- checking ----

PROBE_SEEDS = (0, 1)


def _probe_inputs(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> list[torch.Tensor]:
    """Inputs of several distributions, as the verification rules ask: normal, uniform, large, negative, tiny."""
    out = []
    for seed in PROBE_SEEDS:
        g = torch.Generator().manual_seed(seed)
        base = torch.randn(shape, generator=g)
        out += [base, torch.rand(shape, generator=g), base * 100, -base.abs() - 0.1, base * 1e-3]
    return [t.to(device=device, dtype=dtype) for t in out]


def _tolerance(dtype: torch.dtype, scale: float) -> Tolerance:
    # Module against module: both outputs are rounded to the dtype, so allow twice the single-rounding tolerance.
    tol = TOLERANCES.get(dtype, TOLERANCES[torch.float32])
    return Tolerance(tol.rtol * 2 * scale, tol.atol * 2 * scale)


def _agree(got: Any, want: Any, scale: float) -> tuple[bool, str, float | None]:
    if not isinstance(got, torch.Tensor) or not isinstance(want, torch.Tensor):
        return False, "the module does not return a single tensor", None
    if got.shape != want.shape or got.dtype != want.dtype:
        return False, f"output {tuple(got.shape)} {got.dtype} vs original {tuple(want.shape)} {want.dtype}", None
    # The relative tolerance also applies to the output's scale (its rms), as in the verifier: a module ending in a
    # linear layer cancels large terms into near-zero outputs whose error reflects the terms' size, not their own
    # (LLaMA's MLP on the x100 probe failed by one rounding of that size). A wrong kernel misses by far more.
    tolerance = _tolerance(want.dtype, scale)
    result = compare(got, want, tolerance=tolerance, slack=torch.full((), tolerance.rtol * _rms(want)))
    return result.ok, str(result), result.max_abs


def _rms(t: torch.Tensor) -> float:
    finite = t.detach().to(torch.float64)[t.isfinite()]
    return float(finite.pow(2).mean().sqrt()) if finite.numel() else 0.0


def _module_dtype_device(module: nn.Module, default: torch.device) -> tuple[torch.dtype, torch.device]:
    for p in module.parameters(recurse=False):
        return p.dtype, p.device
    return torch.float32, default


@torch.no_grad()
def _confirm_by_probing(module: nn.Module, replacement: Replacement, device: torch.device,
                        scale: float) -> tuple[bool, str]:
    dtype, device = _module_dtype_device(module, device)
    for shape in replacement.probe_shapes(module):
        for x in _probe_inputs(shape, dtype, device):
            try:
                want = module.forward(x.clone())
            except Exception as e:  # the module does not take a lone tensor of this shape
                return False, f"forward failed on a probe input ({type(e).__name__})"
            ok, detail, _ = _agree(replacement.forward(x.clone()), want, scale)
            if not ok:
                return False, detail
    return True, "agrees on probe inputs"


@dataclass
class _Call:
    """A module's first call on the example inputs: its inputs (copied before the call: tensors cloned, other
    objects such as a KV cache deep-copied, so a replay sees what the module saw) and its output."""

    args: tuple | None
    kwargs: dict | None
    output: Any = None
    replayed: Any = None  # the replacement's output, for calls replayed at once (then args/kwargs are dropped)


@torch.no_grad()
def _capture(model: nn.Module, modules: dict[str, nn.Module], example_inputs: Sequence[Any],
             example_kwargs: dict[str, Any], replays: dict[str, Callable[[tuple, dict], Any]]):
    """Runs the model once; records each module's first call and the model's output.

    Modules in `replays` run their replacement on a copy of their inputs right before their own call, so only one
    copy of a large argument (a KV cache holding the earlier layers) is alive at a time."""
    seen: dict[str, _Call] = {}
    replaying = []  # calls made by a replay are not the model's own
    handles = []
    for name, m in modules.items():
        def before(mod, args, kwargs, _name=name):
            if _name in seen or replaying:
                return
            call = seen[_name] = _Call(copy_arguments(args), copy_arguments(kwargs))
            if _name in replays:
                replaying.append(_name)
                try:
                    call.replayed = replays[_name](call.args, call.kwargs)
                except Exception as e:  # reported as the swap's failure
                    call.replayed = e
                finally:
                    replaying.pop()
                call.args = call.kwargs = None

        def after(mod, args, kwargs, output, _name=name):
            if not replaying and seen[_name].output is None:
                seen[_name].output = output
        handles.append(m.register_forward_pre_hook(before, with_kwargs=True))
        handles.append(m.register_forward_hook(after, with_kwargs=True))
    try:
        output = model(*example_inputs, **example_kwargs)
    finally:
        for h in handles:
            h.remove()
    return seen, output


def _call_replacement(module: nn.Module, replacement: Replacement, args: tuple, kwargs: dict) -> Any:
    """What the swapped module would return for this call (its own forward where the kernel does not apply)."""
    if replacement.full_signature:
        result = replacement.forward(*args, **kwargs)
        return module.forward(*args, **kwargs) if result is NotImplemented else result
    if len(args) == 1 and not kwargs:
        return replacement.forward(args[0])
    return module.forward(*args, **kwargs)


def _first_tensor(value: Any) -> Any:
    """Modules like nn.MultiheadAttention return (output, weights): compare the output."""
    if isinstance(value, tuple) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    return value


def _summarise(rejected: list[str]) -> str:
    """One line for a module no proposal fitted: probe mismatches are listed by kernel, other reasons in full."""
    mismatched = sorted({r.split(":")[0][4:] for r in rejected if r.startswith("not ") and "MISMATCH" in r})
    others = [r for r in rejected if not (r.startswith("not ") and "MISMATCH" in r)]
    parts = others + ([f"computes none of {', '.join(mismatched)} (outputs differ on probe inputs)"]
                      if mismatched else [])
    return "; ".join(parts)


def _tensors_in(value: Any) -> list[torch.Tensor]:
    """The floating-point tensors of a model output (a tensor, tuple, list, dict or ModelOutput), in order."""
    if isinstance(value, torch.Tensor):
        return [value] if value.is_floating_point() else []
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors_in(v)]
    return []


FIRST_CALL = "first_call"


def optimize(model: nn.Module, config: OptimizeConfig | None = None, *,
             example_inputs: Sequence[Any] | str | None = None, example_kwargs: dict[str, Any] | None = None,
             verify: bool = True, kernel_packs: Sequence[Any] = ()) -> nn.Module:
    """Swaps faster kernels into `model` in place and returns it, with `model.mpskernels_report` attached.

    example_inputs: arguments of one forward call (example_kwargs: its keyword arguments). With them (and
    verify=True) every swap is checked on the inputs its module really receives and rolled back if its output
    disagrees; the model's whole output is then compared with the original's. example_inputs="first_call" defers
    all of it to the model's first call and uses that call's arguments. Modules recognised by their computation
    are always checked on probe inputs.

    kernel_packs: generated kernels (KernelPack objects or pack folders, see mpskernels.packs); a module of the
    class a pack was generated for is swapped for it ahead of the built-in kernels, under the same checks.
    """
    if isinstance(example_inputs, str):
        if example_inputs != FIRST_CALL:
            raise ValueError(f"example_inputs must be a sequence of arguments or {FIRST_CALL!r}, "
                             f"got {example_inputs!r}")
        return _optimize_on_first_call(model, config, verify, kernel_packs)
    report = Report()
    if disabled():
        report.disabled = True
        object.__setattr__(model, "mpskernels_report", report)
        return model
    config = config or OptimizeConfig()
    packs = _load_packs(kernel_packs)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    chosen: dict[str, tuple[nn.Module, Replacement]] = {}
    calls = (attention_calls(model, tuple(example_inputs), example_kwargs or {})
             if example_inputs is not None and any(not is_torch_builtin(m) for m in model.modules()) else None)

    replaced_subtrees: list[str] = []  # modules whose new forward no longer calls their children's forward
    for name, module in model.named_modules():
        if _SWAP_ATTRIBUTE in module.__dict__:
            continue  # already swapped by an earlier optimize()
        if any(name.startswith(p + ".") for p in replaced_subtrees):
            continue
        type_name = type(module).__name__
        answer = _pack_replacement(module, packs) or find_replacement(module)
        if isinstance(answer, str):
            report.add(ReportEntry(name, type_name, SKIPPED, detail=answer))
            continue
        proposals = [answer] if isinstance(answer, Replacement) else candidates(module)
        rejected = []
        if answer is None and not is_torch_builtin(module):
            routed = _routed_proposal(name, module, calls, config)
            if isinstance(routed, Replacement):
                proposals.append(routed)
            elif routed:
                rejected.append(routed)
        for proposal in proposals:
            ruled_out = config.allows(proposal.kernel, name)
            if ruled_out:
                rejected.append(ruled_out)
                continue
            if proposal.matched_by == "computation" and proposal.probe_shapes is not None:
                ok, detail = _confirm_by_probing(module, proposal, device, config.tolerance_scale)
                if not ok:
                    rejected.append(f"not {proposal.kernel}: {detail}")
                    continue
            chosen[name] = (module, proposal)
            if list(module.children()) and not proposal.keeps_children:
                replaced_subtrees.append(name)
            break
        else:
            if rejected:
                report.add(ReportEntry(name, type_name, SKIPPED, detail=_summarise(rejected)))

    modules = dict(model.named_modules())
    fusions, refused = sequential_fusions(model)
    for name, reason in refused:
        report.add(ReportEntry(name, type(modules[name]).__name__, SKIPPED, detail=f"not folded: {reason}"))
    planned_fusions = []
    for f in fusions:
        ruled_out = config.allows(f.kernel, f.first) or config.allows(f.kernel, f.second)
        if ruled_out:
            report.add(ReportEntry(f.second, type(modules[f.second]).__name__, SKIPPED, detail=ruled_out))
        elif f.first not in chosen and f.second not in chosen and _SWAP_ATTRIBUTE not in modules[f.first].__dict__:
            planned_fusions.append(f)

    captured, original_output = ({}, None)
    if example_inputs is not None and verify:
        watched = {n: m for n, (m, _) in chosen.items()}
        watched.update({n: modules[n] for f in planned_fusions for n in (f.first, f.second)})
        replays = {n: functools.partial(_call_replacement, m, r) for n, (m, r) in chosen.items() if r.full_signature}
        captured, original_output = _capture(model, watched, example_inputs, example_kwargs or {}, replays)

    for f in planned_fusions:
        first, second = modules[f.first], modules[f.second]
        detail = f"{type(first).__name__} + {type(second).__name__} folded into one convolution"
        max_abs = None
        if f.first in captured and f.second in captured:
            with torch.no_grad():
                got = f.forward(captured[f.first].args[0])
            ok, check, max_abs = _agree(got, captured[f.second].output, config.tolerance_scale)
            if not ok:
                report.add(ReportEntry(f.first, type(first).__name__, ROLLED_BACK, f.kernel, "fusion", check, max_abs))
                continue
            detail += f"; checked on example inputs: {check}"
        _install(first, Replacement(f.kernel, f.forward, "fusion"))
        _install(second, Replacement(f.kernel, lambda x: x, "fusion"))
        report.add(ReportEntry(f.first, type(first).__name__, SWAPPED, f.kernel, "fusion", detail, max_abs))
        report.add(ReportEntry(f.second, type(second).__name__, SWAPPED, f.kernel, "fusion",
                               f"folded into {f.first}"))

    for name, (module, replacement) in chosen.items():
        entry = ReportEntry(name, type(module).__name__, SWAPPED, replacement.kernel, replacement.matched_by)
        if name in captured:
            call = captured[name]
            if replacement.full_signature:
                got = call.replayed
            else:
                with torch.no_grad():
                    got = _call_replacement(module, replacement, call.args, call.kwargs)
            if isinstance(got, Exception):
                report.add(ReportEntry(name, entry.module_type, ROLLED_BACK, replacement.kernel,
                                       replacement.matched_by, f"failed on the example inputs: "
                                       f"{type(got).__name__}: {got}"))
                continue
            want = call.output
            routes = replacement.forward.stats if isinstance(replacement.forward, RoutedForward) else None
            if routes is not None and not routes.routed:  # the module's own forward ran: nothing to swap
                report.add(ReportEntry(name, entry.module_type, SKIPPED, detail=f"{replacement.detail}: no call "
                                       f"on the example inputs could be routed: {routes.reasons()}"))
                continue
            ok, detail, max_abs = _agree(_first_tensor(got), _first_tensor(want), config.tolerance_scale)
            if not ok:
                report.add(ReportEntry(name, entry.module_type, ROLLED_BACK, replacement.kernel,
                                       replacement.matched_by, detail, max_abs))
                continue
            done = ""
            if routes is not None:
                done = f"{replacement.detail} ({routes.describe()}); "
                replacement = _routed_replacement(replacement.forward.narrowed())
            entry = ReportEntry(name, entry.module_type, SWAPPED, replacement.kernel, replacement.matched_by,
                                f"{done}checked on example inputs: {detail}", max_abs)
        elif replacement.detail:
            checking = example_inputs is not None and verify
            why = "not called on the example inputs" if checking else "no example inputs given"
            entry = ReportEntry(name, entry.module_type, SWAPPED, replacement.kernel, replacement.matched_by,
                                f"{replacement.detail}; not checked ({why})")
        elif replacement.matched_by == "computation":
            entry = ReportEntry(name, entry.module_type, SWAPPED, replacement.kernel, "computation",
                                "recognised: agrees on probe inputs")
        _install(module, replacement)
        report.add(entry)

    if original_output is not None:
        with torch.no_grad():
            new_output = model(*example_inputs, **(example_kwargs or {}))
        pairs = list(zip(_tensors_in(new_output), _tensors_in(original_output)))
        if pairs:
            scale = config.tolerance_scale * max(1, len(report.swapped))  # errors add up through the layers
            checks = [_agree(got, want, scale) for got, want in pairs]
            failed = [detail for ok, detail, _ in checks if not ok]
            report.output_check = failed[0] if failed else checks[0][1]
    order = {name: i for i, (name, _) in enumerate(model.named_modules())}
    report.entries.sort(key=lambda e: order.get(e.module, len(order)))
    object.__setattr__(model, "mpskernels_report", report)
    return model


WRITTEN_OUT = ("computes attention written out (softmax over 4-D scores): optimize() routes only "
               "scaled_dot_product_attention calls; torch.compile(backend=\"mpskernels\") rewrites this form")


def _routed_proposal(name: str, module: nn.Module, calls: dict[str, Any] | None,
                     config: OptimizeConfig) -> Replacement | str:
    """The module's own forward with its SDPA calls (seen on the example inputs, or named in its code) and its
    rotary functions routed to mpskernels ops; or why it gets none (empty: nothing to say)."""
    seen = (calls or {}).get(name, {})
    sdpa = seen.get("sdpa", 0) > 0 or calls_sdpa_in_code(module)
    routed = routed_forward(module, sdpa, lambda kernel: config.allows(kernel, name))
    if isinstance(routed, str):
        return "; ".join(r for r in (routed, WRITTEN_OUT if seen.get("softmax") else "") if r)
    return _routed_replacement(routed)


def _routed_replacement(routed: RoutedForward) -> Replacement:
    return Replacement("+".join(routed.kernels), routed, "computation", full_signature=True, keeps_children=True,
                       detail=routed.describe())


def _load_packs(kernel_packs: Sequence[Any]) -> list[Any]:
    from ..packs import KernelPack, load_pack

    return [p if isinstance(p, KernelPack) else load_pack(p) for p in kernel_packs]


def _pack_replacement(module: nn.Module, packs: list[Any]) -> Replacement | None:
    """The first pack generated for this module's class, as a replacement taking the module's whole call."""
    from ..packs import PackModule

    for pack in packs:
        if pack.matches(module):
            runner = PackModule(pack, module, strict=False)
            return Replacement(f"pack:{pack.name}", lambda *a, **k: runner.run(a, k), "kernel pack",
                               full_signature=True)
    return None


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
