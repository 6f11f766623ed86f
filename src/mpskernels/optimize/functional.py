"""Functional calls inside a module's own forward, routed to mpskernels ops.

Real models call the functions as often as they hold the modules: `F.gelu(x)`, `torch.softmax(x, dim=-1)`,
`x.softmax(-1)`, `F.layer_norm(x, (d,), w, b)`. A module whose forward makes such calls keeps that forward; a
TorchFunctionMode active only while it runs (see routes.RoutedForward) turns each call the kernel computes into the
mpskernels op, and lets every other call run PyTorch's function, counting why.

Only calls made by the module's own code are routed: the mode stays active while the forward runs its children,
and a child may have been left unswapped on purpose (rolled back by the speed gate, ruled out by the config). The
mode walks up the Python frames past torch's own files (and mpskernels' routes) to the first frame of user code, and
routes the call only when that frame runs the module's forward (or a lambda or inner function written inside it)
for this very module.

Which modules get the route: those seen making such calls on the example inputs (routes._Spy counts them per
innermost running module, with the same frame test), or, without example inputs, those whose forward's code names
one of the functions.

`silu(a) * b` is not fused here: in eager mode silu's output already exists when the product runs, so a fused
kernel would save nothing. The spy notices the pattern and the report leaves it to
torch.compile(backend="mpskernels"), which sees the whole graph.
"""

from __future__ import annotations

import inspect
import os
import sys
import types
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from .. import ops
from ..registry import RUNNERS, check_inputs, unsupported_reason
from .matchers import default_eps, legacy_softmax_dim

TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
OUR_DIR = os.path.dirname(__file__) + os.sep  # this package's modes and spies call on behalf of someone else

SILU_MUL = ("computes silu(a) * b in eager code: silu's output exists before the product runs, so fusing it would "
            "save nothing here; torch.compile(backend=\"mpskernels\") fuses it into swiglu")


# ---- binding each function's arguments ----


def bind_arguments(names: tuple[str, ...], defaults: dict[str, Any], args: tuple,
                   kwargs: dict) -> dict[str, Any] | None:
    if len(args) > len(names) or set(kwargs) - set(names):
        return None
    bound = dict(defaults)
    bound.update(zip(names, args))
    bound.update(kwargs)
    return bound if all(n in bound for n in names) else None


def _activation(kernel: str) -> Callable[[dict], tuple[Callable, dict] | str]:
    """F.silu / F.mish / F.hardswish(input, inplace=False)."""

    def route(a: dict) -> tuple[Callable, dict] | str:
        if a["inplace"]:
            return "in place (the kernel writes a new tensor)"
        return getattr(ops, kernel), {"x": a["input"]}

    return route


def _gelu(a: dict) -> tuple[Callable, dict] | str:
    if a["approximate"] not in ("none", "tanh"):
        return f"approximate={a['approximate']!r}"
    return ops.gelu, {"x": a["input"], "approximate": a["approximate"]}


def _softmax(kernel: str, legacy: bool) -> Callable[[dict], tuple[Callable, dict] | str]:
    """softmax / log_softmax over `dim` (legacy: F.softmax's dim=None picks PyTorch's implicit dimension)."""

    def route(a: dict) -> tuple[Callable, dict] | str:
        x, dim, dtype = a["input"], a["dim"], a["dtype"]
        if not isinstance(x, torch.Tensor):
            return "the input is not a tensor"
        if dim is None and legacy:
            dim = legacy_softmax_dim(x.dim())
        if not isinstance(dim, int) or x.dim() == 0 or dim not in (-1, x.dim() - 1):
            return f"dim={a['dim']!r} is not the last dimension of a {x.dim()}-D input"
        if dtype is not None and dtype != x.dtype:
            return f"dtype={dtype} differs from the input's {x.dtype}"
        return getattr(ops, kernel), {"x": x, "mask": None, "scale": 1.0}

    return route


def _last_dim_only(x: Any, normalized_shape: Any) -> str | None:
    if not isinstance(x, torch.Tensor):
        return "the input is not a tensor"
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if len(shape) != 1 or x.dim() == 0 or shape[0] != x.shape[-1]:
        return f"normalized_shape {shape} is not the last dimension alone"
    return None


def _layer_norm(a: dict) -> tuple[Callable, dict] | str:
    reason = _last_dim_only(a["input"], a["normalized_shape"])
    if reason:
        return reason
    return ops.layer_norm, {"x": a["input"], "weight": a["weight"], "bias": a["bias"], "eps": a["eps"]}


def _rms_norm(a: dict) -> tuple[Callable, dict] | str:
    reason = _last_dim_only(a["input"], a["normalized_shape"])
    if reason:
        return reason
    return ops.rms_norm, {"x": a["input"], "weight": a["weight"], "eps": default_eps(a["eps"], a["input"].dtype)}


def _group_norm(a: dict) -> tuple[Callable, dict] | str:
    return ops.group_norm, {"x": a["input"], "groups": a["num_groups"], "weight": a["weight"], "bias": a["bias"],
                            "eps": a["eps"]}


# function -> (kernel, parameter names, defaults, route)
ACT = (("input", "inplace"), {"inplace": False})
SOFTMAX_F = (("input", "dim", "_stacklevel", "dtype"), {"dim": None, "_stacklevel": 3, "dtype": None})
SOFTMAX_T = (("input", "dim", "dtype"), {"dtype": None})
FUNCTIONS: dict[Any, tuple[str, tuple[str, ...], dict, Callable]] = {
    F.gelu: ("gelu", ("input", "approximate"), {"approximate": "none"}, _gelu),
    F.silu: ("silu", *ACT, _activation("silu")),
    F.mish: ("mish", *ACT, _activation("mish")),
    F.hardswish: ("hardswish", *ACT, _activation("hardswish")),
    F.softmax: ("softmax", *SOFTMAX_F, _softmax("softmax", True)),
    F.log_softmax: ("log_softmax", *SOFTMAX_F, _softmax("log_softmax", True)),
    torch.softmax: ("softmax", *SOFTMAX_T, _softmax("softmax", False)),
    torch.log_softmax: ("log_softmax", *SOFTMAX_T, _softmax("log_softmax", False)),
    torch.Tensor.softmax: ("softmax", *SOFTMAX_T, _softmax("softmax", False)),
    torch.Tensor.log_softmax: ("log_softmax", *SOFTMAX_T, _softmax("log_softmax", False)),
    F.layer_norm: ("layer_norm", ("input", "normalized_shape", "weight", "bias", "eps"),
                   {"weight": None, "bias": None, "eps": 1e-5}, _layer_norm),
    F.rms_norm: ("rms_norm", ("input", "normalized_shape", "weight", "eps"), {"weight": None, "eps": None},
                 _rms_norm),
    F.group_norm: ("group_norm", ("input", "num_groups", "weight", "bias", "eps"),
                   {"weight": None, "bias": None, "eps": 1e-5}, _group_norm),
}
# The names these functions go by in a forward's code (F.gelu, torch.softmax, x.softmax, ...).
CODE_NAMES = {"gelu", "silu", "mish", "hardswish", "softmax", "log_softmax", "layer_norm", "rms_norm", "group_norm"}
FUNCTION_KERNELS = sorted({kernel for kernel, *_ in FUNCTIONS.values()})


def functional_call(func: Any, args: tuple, kwargs: dict) -> tuple[str, Any] | None:
    """(kernel, the op's result or why the call is not routed) for one of FUNCTIONS; None for other functions."""
    entry = FUNCTIONS.get(func)
    if entry is None:
        return None
    kernel, names, defaults, route = entry
    bound = bind_arguments(names, defaults, args, kwargs)
    if bound is None:
        return kernel, "unknown arguments"
    routed = route(bound)
    if isinstance(routed, str):
        return kernel, routed
    op, inputs = routed
    reason = kernel_refuses(kernel, inputs)
    return kernel, reason if reason else op(*inputs.values())


def kernel_refuses(kernel: str, inputs: dict[str, Any]) -> str | None:
    """Why the kernel does not take these inputs (dtypes, shapes, its constraints, autograd), or None."""
    tensors = [t for t in inputs.values() if isinstance(t, torch.Tensor)]
    if not tensors or not isinstance(inputs.get("x"), torch.Tensor):
        return "the input is not a tensor"
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return "gradients are needed (routed calls are for inference)"
    family = RUNNERS[kernel].family
    try:
        check_inputs(family, inputs)
    except (TypeError, ValueError) as e:
        return str(e).replace(f"mpskernels.{kernel}: ", "")
    return unsupported_reason(family, inputs)


# ---- whose code made the call ----


def forward_codes(module: nn.Module) -> frozenset[types.CodeType]:
    """The code objects of the module's forward (through functools.wraps decorators) and of the lambdas and inner
    functions written inside it."""
    from .routes import own_forward  # routes imports this module

    forward = own_forward(module)
    function = inspect.unwrap(getattr(forward, "__func__", forward))
    if not isinstance(function, types.FunctionType):
        return frozenset()
    codes, found = [function.__code__], set()
    while codes:
        code = codes.pop()
        found.add(code)
        codes.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return frozenset(found)


def caller_frame(depth: int = 2) -> types.FrameType | None:
    """The first frame above the caller's caller that runs neither torch's own code nor this package's."""
    frame = sys._getframe(depth)
    while frame is not None:
        path = frame.f_code.co_filename
        if not (path.startswith(TORCH_DIR) or path.startswith(OUR_DIR)):
            return frame
        frame = frame.f_back
    return None


def made_by(module: nn.Module, codes: frozenset[types.CodeType], frame: types.FrameType | None) -> bool:
    """The frame runs the module's own forward code (for this module, not another instance of its class)."""
    if frame is None or frame.f_code not in codes:
        return False
    owner = frame.f_locals.get("self", module) if frame.f_code.co_varnames[:1] == ("self",) else module
    return owner is module


def names_functions(module: nn.Module) -> set[str]:
    """The routable kernels the module's forward names in its code (a static look, without example inputs)."""
    names: set[str] = set()
    for code in forward_codes(module):
        names.update(code.co_names)
    return {n for n in names & CODE_NAMES}


# ---- the route ----


class FunctionalRoute(TorchFunctionMode):
    """Routes the module's own calls of FUNCTIONS whose kernel is in `kernels`; counts them in `stats`."""

    def __init__(self, module: nn.Module, kernels: frozenset[str], stats: Any) -> None:
        super().__init__()
        self.module, self.kernels, self.stats = module, kernels, stats
        self.codes = forward_codes(module)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        kernel = FUNCTIONS.get(func, ("",))[0]
        if kernel in self.kernels and made_by(self.module, self.codes, caller_frame()):
            _, result = functional_call(func, args, kwargs)
            if isinstance(result, torch.Tensor):
                self.stats.routed[kernel] += 1
                return result
            self.stats.not_routed[f"{kernel}: {result}"] += 1
        return func(*args, **kwargs)


def functional_kernels(seen: dict[str, int], module: nn.Module, looked: bool) -> set[str]:
    """The kernels to route for a module: those the spy saw its own code call (`looked`: the example inputs ran),
    else those its forward names."""
    if looked:
        return {k for k in FUNCTION_KERNELS if seen.get(f"fn:{k}", 0) > 0}
    return names_functions(module)
