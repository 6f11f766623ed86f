"""Turns kernel declarations into torch.library ops in the `mpskernels` namespace.

Each family becomes `torch.ops.mpskernels.<name>` with CPU and MPS kernels and a fake (meta) implementation.
Ops are registered the low-overhead way (`Library.define` + `Library.impl`), which costs a few microseconds per
call less than `torch.library.custom_op`: decode-sized ops are dominated by host overhead.

One call: check inputs (device, dtype, shapes) → constraints (unsupported case: reference fallback) → contiguous
inputs, allocated outputs → plan (pure, from shapes and dtype) → backend launch. The checks, constraints and plan
depend only on shapes, dtypes, devices and scalars, so each is decided once per such key and cached.
"""

from __future__ import annotations

import logging
import math
import numbers
import re
import struct
from typing import Any, Mapping

import torch

from .kernels import FAMILIES
from .kernels.spec import KernelFamily, LaunchPlan, Like, TensorMeta, allocate_scratch, no_validation
from .runtime import BackendError, choose_backend

log = logging.getLogger("mpskernels")

NAMESPACE = "mpskernels"
_LIBRARY = torch.library.Library(NAMESPACE, "DEF")
_logged_fallbacks: set[tuple[str, str]] = set()


def schema_arguments(schema: str) -> list[tuple[str, str]]:
    """(type, name) of each argument in a schema like "(Tensor x, Tensor? weight, float eps) -> Tensor"."""
    # The argument list ends at the last ")" before "->": alias annotations like Tensor(a!) hold parentheses too.
    inner = schema[schema.index("(") + 1 : schema.rindex(")", 0, schema.index("->"))]
    out = []
    for arg in inner.split(","):
        if arg.strip():
            type_, name = re.split(r"\s+", arg.strip().split("=")[0].strip())[-2:]
            out.append((type_, name))
    return out


def argument_names(schema: str) -> list[str]:
    return [name for _, name in schema_arguments(schema)]


def _tensors(inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in inputs.items() if isinstance(v, torch.Tensor)}


def dtype_arguments(family: KernelFamily) -> tuple[str, ...]:
    """Tensor arguments that carry the op's dtype."""
    if family.dtype_args is not None:
        return family.dtype_args
    return tuple(name for type_, name in schema_arguments(family.schema) if type_.startswith("Tensor"))


def _type_name(value: Any) -> str:
    return type(value).__name__


def _check_float(op: str, name: str, value: Any) -> None:
    """A float argument: a real number every backend can pass to a kernel as a float32 (finite, |value| <= FLT_MAX;
    values that round to FLT_MAX included, as struct packing rounds them)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # numpy scalars are Real too
        raise TypeError(f"{op}: {name} must be a float, got {_type_name(value)}")
    try:
        finite = math.isfinite(value) and struct.pack("<f", value) is not None
    except OverflowError:
        finite = False
    if not finite:
        raise ValueError(f"{op}: {name} must be a finite float32 value (|{name}| <= 3.4028235e38), got {value!r}")


def check_argument_types(family: KernelFamily, inputs: Mapping[str, Any]) -> None:
    """Every argument has its schema type: a tensor where a Tensor belongs, a finite float32 value for a float, an
    int (not a bool) for an int. The errors name the op and the argument. Runs before anything uses the values."""
    op = f"mpskernels.{family.name}"
    for type_, name in schema_arguments(family.schema):
        value = inputs.get(name)
        optional = type_.endswith("?")
        if optional and value is None:
            continue
        base = type_.rstrip("?").split("(")[0]
        if base == "Tensor":
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"{op}: {name} must be a tensor{' or None' if optional else ''}, "
                                f"got {_type_name(value)}")
        elif base == "float":
            _check_float(op, name, value)
        elif base == "int":
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"{op}: {name} must be an int, got {_type_name(value)}")
            if not -2**63 <= value < 2**63:
                raise ValueError(f"{op}: {name} = {value} does not fit in 64 bits")
        elif base == "bool" and not isinstance(value, bool):
            raise TypeError(f"{op}: {name} must be a bool, got {_type_name(value)}")
        elif base == "str" and not isinstance(value, str):
            raise TypeError(f"{op}: {name} must be a str, got {_type_name(value)}")


def check_inputs(family: KernelFamily, inputs: Mapping[str, Any]) -> None:
    """Errors for inputs no kernel or reference of this op should take: wrong argument types, scalars no kernel can
    take, mixed devices, dtypes, bad shapes. Every backend's call passes here first."""
    op = f"mpskernels.{family.name}"
    check_argument_types(family, inputs)
    tensors = _tensors(inputs)
    devices = {t.device for t in tensors.values()}
    if len(devices) > 1:
        listed = ", ".join(f"{k} on {v.device}" for k, v in tensors.items())
        raise ValueError(f"{op}: all tensors must be on one device, got {listed}")
    carriers = dtype_arguments(family)
    typed = {k: t for k, t in tensors.items() if k in carriers}
    supported = ", ".join(str(d).replace("torch.", "") for d in family.dtypes)
    for name, t in typed.items():
        if t.dtype not in family.dtypes:
            raise TypeError(f"{op}: {name} has dtype {t.dtype}; supported dtypes: {supported}")
    if len({t.dtype for t in typed.values()}) > 1:
        listed = ", ".join(f"{k} is {v.dtype}" for k, v in typed.items())
        raise TypeError(f"{op}: all tensors must have one dtype, got {listed}")
    validate(family, inputs)


def validate(family: KernelFamily, inputs: Mapping[str, Any]) -> None:
    try:
        family.validate(inputs)
    except ValueError as e:
        raise ValueError(f"mpskernels.{family.name}: {e}") from None


def unsupported_reason(family: KernelFamily, inputs: Mapping[str, Any]) -> str | None:
    for constraint in family.constraints:
        reason = constraint(inputs)
        if reason:
            return reason
    return None


# Tests and the verifier set this: outputs start as NaN, so a kernel that skips elements cannot pass.
poison_outputs = False


def allocate_outputs(family: KernelFamily, inputs: Mapping[str, Any], device: torch.device,
                     inputs_contiguous: bool = True) -> dict[str, torch.Tensor]:
    """The outputs a call writes, always contiguous. `inputs_contiguous`: the inputs are contiguous already, so an
    output shaped like one can be allocated with empty_like (cheaper than torch.empty)."""
    outputs = {}
    for name, alloc in family.outputs.items():
        if inputs_contiguous and isinstance(alloc, Like) and not poison_outputs:
            outputs[name] = alloc.empty(inputs)  # empty_like: about half the host time of torch.empty
            continue
        shape, dtype = alloc(inputs)
        if poison_outputs:
            outputs[name] = torch.full(shape, float("nan"), dtype=dtype, device=device)
        else:
            outputs[name] = torch.empty(shape, dtype=dtype, device=device)
    return outputs


def _result(outputs: dict[str, torch.Tensor]):
    if len(outputs) == 1:
        for value in outputs.values():
            return value
    if not outputs:
        return None  # a mutating op with no outputs: `-> ()`
    return tuple(outputs.values())


def _log_fallback_once(family: KernelFamily, reason: str) -> None:
    key = (family.name, reason)
    if key not in _logged_fallbacks:
        _logged_fallbacks.add(key)
        log.info("mpskernels.%s: using the PyTorch reference: %s", family.name, reason)


class OpRunner:
    """The op's implementation for real tensors (CPU and MPS), with everything derivable from the declaration
    computed once: decode-sized calls are dominated by this host work."""

    def __init__(self, family: KernelFamily):
        self.family = family
        self.names = argument_names(family.schema)
        self.defaults: dict[str, Any] = {}  # filled by register() from the registered schema
        self.mutated = family.mutates
        self.tensor_names = [n for t, n in schema_arguments(family.schema) if t.startswith("Tensor")]
        self.validates = family.validate is not no_validation
        # Outputs shaped like an input (the common case) are allocated with empty_like, straight from the inputs.
        self.like_outputs = ([(name, alloc.name) for name, alloc in family.outputs.items()]
                             if all(isinstance(a, Like) for a in family.outputs.values()) else None)
        self.plans: dict[tuple, LaunchPlan] = {}  # plans are pure functions of shapes, dtypes and scalars
        self.decisions: dict[tuple, tuple[str | None, torch.device]] = {}  # checks passed: (fallback reason, device)

    def fill_defaults(self, args: tuple, kwargs: dict[str, Any]) -> tuple:
        """Positional arguments with keyword arguments and schema defaults filled in (the dispatcher drops
        trailing arguments left at their defaults)."""
        if len(args) == len(self.names) and not kwargs:
            return args
        full = list(args)
        for name in self.names[len(args):]:
            if name in kwargs:
                full.append(kwargs.pop(name))
            elif name in self.defaults:
                full.append(self.defaults[name])
            else:
                raise TypeError(f"mpskernels.{self.family.name}() missing argument '{name}'")
        if kwargs:
            raise TypeError(f"mpskernels.{self.family.name}() got unexpected argument(s) {', '.join(kwargs)}")
        return tuple(full)

    def __call__(self, *args: Any, **kwargs: Any):
        family = self.family
        if len(args) != len(self.names) or kwargs:
            args = self.fill_defaults(args, kwargs)
        key = []  # shapes, dtypes, devices and scalars: all the checks, constraints and plan depend on
        for a in args:
            if isinstance(a, torch.Tensor):
                key.append(a.shape)
                key.append(a.dtype)
                key.append(a.device)
            else:
                key.append(a)
        key = tuple(key)
        inputs = dict(zip(self.names, args))
        try:
            decision = self.decisions.get(key)
        except TypeError:  # an unhashable argument (a list where a tensor belongs): a usage error, named
            check_argument_types(family, inputs)
            raise
        if decision is None:
            decision = self.decide(inputs, key)  # raises for inputs the op rejects
        elif self.validates:
            validate(family, inputs)  # may look at values (e.g. position ids on CPU): every call
        reason, device = decision
        try:
            backend, explicit = choose_backend(device)
        except BackendError as e:
            raise BackendError(f"mpskernels.{family.name}: {e}") from None
        if reason is not None or backend is None:
            _log_fallback_once(family, reason or f"no kernel backend for {device.type} tensors")
            return family.reference(*args)
        try:
            return self.launch(backend, inputs, device, key)
        except Exception as e:
            if explicit:
                raise BackendError(f"mpskernels.{family.name}: the {backend.name} backend failed: {e}") from e
            _log_fallback_once(family, f"the {backend.name} backend failed ({type(e).__name__}: {e})")
            return family.reference(*args)

    def decide(self, inputs: dict[str, Any], key: tuple) -> tuple[str | None, torch.device]:
        """The first time these shapes, dtypes and devices are seen: every input check, then the constraints
        (which, like plans, may depend on nothing else). Cached: later calls skip straight to the launch."""
        check_inputs(self.family, inputs)
        reason = unsupported_reason(self.family, inputs)
        device = next(v.device for v in inputs.values() if isinstance(v, torch.Tensor))
        if len(self.decisions) < 4096:
            self.decisions[key] = (reason, device)
        return reason, device

    @staticmethod
    def is_empty(outputs: dict[str, torch.Tensor]) -> bool:
        for t in outputs.values():
            if t.numel():
                return False
        return True

    def launch(self, backend, inputs: dict[str, Any], device: torch.device, key: tuple):
        write_back = []  # (original, contiguous copy) of mutated inputs that were not contiguous
        for k in self.tensor_names:
            v = inputs[k]
            if v is not None and not v.is_contiguous():
                copy = v.contiguous()
                if k in self.mutated:
                    write_back.append((v, copy))
                inputs[k] = copy
        for k in self.family.aligned_inputs:
            v = inputs[k]
            if v is not None and v.data_ptr() % 16:
                inputs[k] = v.clone()  # contiguous already: a fresh, aligned allocation
        if self.like_outputs is not None and not poison_outputs:
            outputs = {name: torch.empty_like(inputs[source]) for name, source in self.like_outputs}
        else:
            outputs = allocate_outputs(self.family, inputs, device)
        if key in self.plans:
            plan = self.plans[key]
        else:
            plan = None  # nothing to launch: every output is empty, or the grid is
            if not (outputs and self.is_empty(outputs)):
                metas = {k: TensorMeta.of(v) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
                plan = self.family.plan(**metas)
                if plan.is_empty():  # Metal rejects empty dispatches
                    plan = None
            if len(self.plans) < 4096:
                self.plans[key] = plan
        if plan is not None:
            inputs.update(outputs)  # plans name their buffers: inputs, outputs and scratch by name
            if plan.scratch:
                inputs.update(allocate_scratch(plan, device, poison_outputs))
            backend.launch(self.family, plan, inputs)
        for original, copy in write_back:
            original.copy_(copy)
        return _result(outputs)


def run(family: KernelFamily, *args: Any):
    """Calls the op's implementation directly (what torch.ops.mpskernels.<name> reaches on CPU and MPS)."""
    return RUNNERS[family.name](*args)


def fake(family: KernelFamily, *args: Any):
    """Shapes only, for torch.compile and export: the outputs the real call would allocate — contiguous, whatever
    the inputs' strides (the real call makes its inputs contiguous before allocating)."""
    runner = RUNNERS[family.name]
    inputs = dict(zip(runner.names, runner.fill_defaults(tuple(args), {})))
    device = next(iter(_tensors(inputs).values())).device
    return _result(allocate_outputs(family, inputs, device, inputs_contiguous=False))


RUNNERS: dict[str, OpRunner] = {}


def register(family: KernelFamily) -> None:
    _LIBRARY.define(family.name + family.schema)
    runner = RUNNERS[family.name] = OpRunner(family)
    runner.defaults = {a.name: a.default_value for a in getattr(torch.ops.mpskernels, family.name).default._schema
                       .arguments if a.has_default_value()}
    _LIBRARY.impl(family.name, runner, "CPU")
    _LIBRARY.impl(family.name, runner, "MPS")
    torch.library.register_fake(family.qualified_name, lambda *args, _f=family: fake(_f, *args), lib=_LIBRARY)


def op(name: str):
    """The registered op `torch.ops.mpskernels.<name>`."""
    return getattr(torch.ops.mpskernels, name)


for _family in FAMILIES:
    register(_family)


# ---- gradients: every op's backward is its PyTorch reference's ----


def reference_backward(family: KernelFamily):
    """(setup_context, backward) for torch.library.register_autograd: the backward re-runs the op's reference on
    the saved inputs with autograd recording and differentiates it, so the gradient is exactly the reference's (the
    kernel computes the same function, to rounding)."""
    names = argument_names(family.schema)

    def setup_context(ctx, inputs, output):
        ctx.tensor_positions = [i for i, v in enumerate(inputs) if isinstance(v, torch.Tensor)]
        ctx.scalars = [None if isinstance(v, torch.Tensor) else v for v in inputs]
        ctx.save_for_backward(*(inputs[i] for i in ctx.tensor_positions))

    def backward(ctx, *grads):
        arguments = list(ctx.scalars)
        wanted = []  # (position, leaf) of the inputs whose gradient is asked for
        for position, saved in zip(ctx.tensor_positions, ctx.saved_tensors):
            leaf = saved.detach()
            if ctx.needs_input_grad[position]:
                leaf.requires_grad_(True)
                wanted.append((position, leaf))
            arguments[position] = leaf
        result = [None] * len(names)
        if not wanted:
            return tuple(result)
        with torch.enable_grad():
            outputs = family.reference(*arguments)
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        pairs = [(o, g) for o, g in zip(outputs, grads) if g is not None and o.requires_grad]
        found = torch.autograd.grad([o for o, _ in pairs], [leaf for _, leaf in wanted], [g for _, g in pairs],
                                    allow_unused=True, create_graph=torch.is_grad_enabled())
        for (position, leaf), grad in zip(wanted, found):
            result[position] = grad if grad is not None else torch.zeros_like(leaf)
        return tuple(result)

    return setup_context, backward


def register_backward(family: KernelFamily) -> bool:
    """Registers the reference's backward for an op that returns new tensors (True). An op writing its inputs in
    place (kv_cache_append) gets none: it is a cache update, not a differentiable function."""
    if family.mutates or not family.outputs:
        return False
    setup_context, backward = reference_backward(family)
    torch.library.register_autograd(family.qualified_name, backward, setup_context=setup_context, lib=_LIBRARY)
    return True


HAS_BACKWARD = {_family.name for _family in FAMILIES if register_backward(_family)}
