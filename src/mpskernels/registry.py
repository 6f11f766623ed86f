"""Turns kernel declarations into torch.library ops in the `mpskernels` namespace.

Each family becomes `torch.ops.mpskernels.<name>` with CPU and MPS kernels and a fake (meta) implementation.
Ops are registered the low-overhead way (`Library.define` + `Library.impl`), which costs a few microseconds per
call less than `torch.library.custom_op`: decode-sized ops are dominated by host overhead.

One call: check inputs (device, dtype, shapes) → constraints (unsupported case: reference fallback) → contiguous
inputs, allocated outputs → plan (pure, from shapes and dtype) → backend launch. The checks, constraints and plan
depend only on shapes, strides, dtypes, devices and scalars, so each is decided once per such key and cached (the
launch cache below); ops with a backward get an Autograd kernel that skips the redispatch when nothing records.
Once the C++ host path is built (cxx_host.py), C++ kernels take the dispatcher's keys over from these Python ones
and serve repeated calls without entering Python's kernels (install_host_path; csrc/host/op_kernels.cpp).
"""

from __future__ import annotations

import functools
import logging
import math
import numbers
import re
import struct
from typing import Any, Mapping

import torch

from . import cxx_host
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
    defaults = RUNNERS[family.name].defaults  # the registered schema's
    for type_, name in schema_arguments(family.schema):
        if name not in inputs and name in defaults:
            continue  # left at its default (a route's inputs name only what it sets)
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


def validate(family: KernelFamily, inputs: Mapping[str, Any], values_only: bool = False) -> None:
    """The family's usage checks (validate, then check_values), errors named by the op; `values_only`: only the
    checks that read values or memory (a repeated call whose validate verdict is cached)."""
    try:
        if not values_only:
            family.validate(inputs)
        if family.check_values is not None:
            family.check_values(inputs)
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


# ---- the repeated-shape path ----
#
# Everything a call decides from its arguments' shapes, strides, dtypes, devices, requires_grad and scalars (the
# input checks, the constraints, which inputs need a contiguous copy, the outputs' shapes, the plan) is decided on
# the first call with those and kept in a `Launch`, found on later calls with one dict lookup. What the key cannot
# see is still done on every call: the checks that read values or memory (KernelFamily.check_values, and the whole
# validate of a family without validate_is_static), the alignment of data pointers, and the backend choice
# (use_backend and MPSKERNELS_BACKEND may change between calls). The key is built in C++ once cxx_host.py has it,
# and torch.ops.mpskernels then reaches C++ kernels that serve simple repeated calls without a trip into Python's
# kernels (csrc/host/op_kernels.cpp; OpRunner.simple_launch and run_into are their Python side).

# False: every call decides afresh and nothing is kept (the tests compare results both ways).
launch_cache = True
_UNPLANNED = object()  # Launch.plan before the first launch computes it


def set_launch_cache(enabled: bool) -> None:
    """Turns the per-op launch caches on or off (the C++ kernels' entries too); either way they start empty."""
    global launch_cache
    launch_cache = enabled
    for runner in RUNNERS.values():
        runner.plans.clear()


def forget_cxx_entries() -> None:
    """Empties the C++ kernels' entries (each holds a Launch of some op's cache), where they are installed."""
    if cxx_host.installed:
        cxx_host.load().clear()


class _Plans(dict):
    """An op's launch cache, whose clear() also forgets the C++ kernels' entries: they hold its Launches."""

    def clear(self) -> None:
        super().clear()
        forget_cxx_entries()


class Launch:
    """What a call with one cache key needs, decided on its first call."""

    __slots__ = ("reason", "device", "revalidate", "grad", "copies", "outputs", "like", "plan", "simple")

    def __init__(self, reason: str | None, device: torch.device, revalidate: bool, grad: bool):
        self.reason = reason  # why the kernel cannot take these inputs: the reference runs (None: it can)
        self.device = device
        self.revalidate = revalidate  # some check reads more than the key: run it on every call
        self.grad = grad  # some tensor requires grad and the op has a backward: autograd may have to record
        self.copies: tuple[int, ...] = ()  # positions of non-contiguous tensors, copied before the launch
        self.outputs: tuple[tuple[str, tuple[int, ...], torch.dtype], ...] = ()
        self.like: tuple[tuple[str, int], ...] | None = None  # (output, input position) when all are Like
        self.plan: Any = _UNPLANNED  # LaunchPlan, or None when there is nothing to launch
        # Set after the first launch when later ones need nothing but outputs shaped like inputs and the backend
        # call: no copies, no alignment test, a plan without scratch (OpRunner.run).
        self.simple = False


def _generated(name: str, params: list[str], body: str):
    """A function compiled from one return expression: per-argument work without a loop or branch per call."""
    namespace: dict[str, Any] = {}
    exec(f"def {name}({', '.join(params)}):\n    return {body}\n", namespace)
    return namespace[name]


def use_key(key) -> None:
    """Every op keys its calls with `key` from now on (install_host_path hands over the C++ one). Entries under the
    previous key stay unreachable: the two keys never produce equal tuples."""
    for runner in RUNNERS.values():
        runner.key = key


def install_host_path(module) -> None:
    """Takes the C++ host path (cxx_host.py builds `module`): its launch key for the Python kernels and
    mpskernels.ops, and its dispatcher kernels for every op (CPU and MPS; the autograd keys too for an op with a
    backward), which take over from the Python kernels registered for the same keys."""
    use_key(module.key)
    for name, runner in RUNNERS.items():
        module.install(name, runner, runner.simple_launch, AUTOGRAD_KERNELS.get(name))


def key_function(schema: str):
    """The cache key of a call, as one generated expression over the op's arguments (it runs on every call). A
    tensor contributes its shape, strides, dtype, device and requires_grad; a scalar its class and value (True ==
    1 and hash alike, yet a bool is no int here). A tensor where a scalar belongs keys by identity and misses; a
    non-tensor where a tensor belongs raises AttributeError, and an unhashable value TypeError: the caller then
    runs the argument checks, which name the error."""
    params, parts = [], []
    for i, (type_, _) in enumerate(schema_arguments(schema)):
        a = f"a{i}"
        params.append(a)
        if type_.startswith("Tensor"):
            meta = f"{a}.shape, {a}.stride(), {a}.dtype, {a}.device, {a}.requires_grad"
            parts.append(f"(None if {a} is None else ({meta}))" if type_.endswith("?") else meta)
        else:
            parts.append(f"{a}.__class__, {a}")
    return _generated("key", params, f"({', '.join(parts)},)")


def by_name_function(names: list[str]):
    """The arguments as the dict a backend takes ({name: value}); a third of dict(zip(names, args))'s cost."""
    params = [f"a{i}" for i in range(len(names))]
    return _generated("by_name", params, "{" + ", ".join(f"{n!r}: {a}" for n, a in zip(names, params)) + "}")


class OpRunner:
    """The op's implementation for real tensors (CPU and MPS), with everything derivable from the declaration
    computed once: decode-sized calls are dominated by this host work."""

    def __init__(self, family: KernelFamily):
        self.family = family
        self.names = argument_names(family.schema)
        self.arity = len(self.names)
        self.defaults: dict[str, Any] = {}  # filled by register() from the registered schema
        self.tails: dict[int, tuple] = {}  # positional count -> the defaults of every later argument (register())
        self.mutated = family.mutates
        arguments = schema_arguments(family.schema)
        self.tensor_names = [n for t, n in arguments if t.startswith("Tensor")]
        self.tensor_positions = [i for i, (t, _) in enumerate(arguments) if t.startswith("Tensor")]
        self.aligned = [(self.names.index(n), n) for n in family.aligned_inputs]
        self.validates = family.validate is not no_validation
        self.differentiable = False  # set by register_backward
        self.key = key_function(family.schema)
        self.by_name = by_name_function(self.names)
        self._plans = _Plans()  # cache key -> Launch (tests reset it after changing a module constant)

    @property
    def plans(self) -> dict[tuple, "Launch"]:
        return self._plans

    @plans.setter
    def plans(self, value: dict) -> None:  # a fresh cache (tests): the C++ kernels' entries hold the old Launches
        self._plans = _Plans(value)
        forget_cxx_entries()

    def fill_defaults(self, args: tuple, kwargs: dict[str, Any]) -> tuple:
        """Positional arguments with keyword arguments and schema defaults filled in (the dispatcher drops
        trailing arguments left at their defaults)."""
        if not kwargs:
            if len(args) == self.arity:
                return args
            tail = self.tails.get(len(args))
            if tail is not None:  # trailing arguments left at their defaults (as the dispatcher passes them)
                return args + tail
        if len(args) > len(self.names):
            raise TypeError(f"mpskernels.{self.family.name}() takes {len(self.names)} arguments, got {len(args)}")
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
        """The call as the dispatcher makes it (below autograd)."""
        if kwargs or len(args) != self.arity:
            args = self.fill_defaults(args, kwargs)
        return self.run(self.lookup(args), args)

    def lookup(self, args: tuple) -> Launch:
        """The call's Launch: cached, or decided now (every input check first: bad input raises here)."""
        try:
            key = self.key(*args)
            launch = self._plans.get(key)
        except (AttributeError, TypeError, RuntimeError):  # a non-tensor where a tensor belongs, an unhashable
            # argument, a tensor without strides (sparse)
            check_argument_types(self.family, dict(zip(self.names, args)))
            raise
        if launch is None:
            return self.decide(args, key)
        if launch.revalidate:  # checks reading values or memory: every call
            validate(self.family, self.by_name(*args), values_only=self.family.validate_is_static)
        return launch

    def decide(self, args: tuple, key: tuple) -> Launch:
        """The first call with this key: every input check, then the constraints, contiguity and outputs (which,
        like plans, may depend on nothing the key does not hold)."""
        cxx_host.start(install_host_path)  # once per process: the C++ path, built in the background
        family = self.family
        inputs = dict(zip(self.names, args))
        check_inputs(family, inputs)
        device = next(a.device for a in args if isinstance(a, torch.Tensor))
        grad = self.differentiable and any(isinstance(a, torch.Tensor) and a.requires_grad for a in args)
        reads_values = family.check_values is not None and \
            (family.values_to_check is None or family.values_to_check(inputs))
        revalidate = (self.validates and not family.validate_is_static) or reads_values
        launch = Launch(unsupported_reason(family, inputs), device, revalidate, grad)
        if launch.reason is None:
            launch.copies = tuple(i for i in self.tensor_positions
                                  if args[i] is not None and not args[i].is_contiguous())
            launch.outputs = tuple((name, *alloc(inputs)) for name, alloc in family.outputs.items())
            if all(isinstance(a, Like) for a in family.outputs.values()):
                launch.like = tuple((name, self.names.index(a.name)) for name, a in family.outputs.items())
        if launch_cache and len(self._plans) < 4096:
            self._plans[key] = launch
        return launch

    def run(self, launch: Launch, args: tuple):
        family = self.family
        try:
            backend, explicit = choose_backend(launch.device)
        except BackendError as e:
            raise BackendError(f"mpskernels.{family.name}: {e}") from None
        if launch.reason is not None or backend is None:
            return self.reference(launch, args)
        try:
            # The common repeated call, inline (a method call more costs the direct route a tenth of a µs): outputs,
            # then the backend. run_into is the same for outputs allocated by the C++ kernels.
            if launch.simple and not poison_outputs:
                tensors = self.by_name(*args)
                like = launch.like
                if len(like) == 1:
                    name, source = like[0]
                    tensors[name] = out = torch.empty_like(args[source])
                    backend.launch(family, launch.plan, tensors)
                    return out
                outs = []
                for name, source in like:
                    tensors[name] = out = torch.empty_like(args[source])
                    outs.append(out)
                backend.launch(family, launch.plan, tensors)
                return tuple(outs)
            return self.launch(backend, launch, args)
        except Exception as e:
            return self.failed(backend, explicit, e, args)

    def reference(self, launch: Launch, args: tuple):
        _log_fallback_once(self.family, launch.reason or f"no kernel backend for {launch.device.type} tensors")
        return self.family.reference(*args)

    def failed(self, backend, explicit: bool, error: Exception, args: tuple):
        """A backend's launch raised: a backend asked for by name re-raises, an automatic one falls back to the
        reference (logged once)."""
        if explicit:
            raise BackendError(f"mpskernels.{self.family.name}: the {backend.name} backend failed: {error}") from error
        _log_fallback_once(self.family, f"the {backend.name} backend failed ({type(error).__name__}: {error})")
        return self.family.reference(*args)

    def simple_launch(self, *args: Any):
        """For the C++ kernels, after a call: (input position of each output, the call that launches a repeated
        one) when later calls with these arguments' key need nothing but outputs shaped like inputs and the
        backend launch; else None (they go the long way, through this runner)."""
        if not launch_cache:
            return None
        try:
            launch = self._plans.get(self.key(*args))
        except (AttributeError, TypeError, RuntimeError):
            return None
        if launch is None or not launch.simple or launch.revalidate or launch.reason is not None:
            return None
        return tuple(source for _, source in launch.like), functools.partial(self.run_into, launch)

    def run_into(self, launch: Launch, args: tuple, outputs: tuple):
        """A C++ kernel's repeated call, its outputs allocated there (in launch.like's order): None once launched
        into them, else the call's result, made the long way (the reference, or poisoned outputs while tests ask
        for them)."""
        try:
            backend, explicit = choose_backend(launch.device)
        except BackendError as e:
            raise BackendError(f"mpskernels.{self.family.name}: {e}") from None
        if backend is None or poison_outputs or not launch_cache:
            return self.run(launch, args)
        tensors = self.by_name(*args)
        for (name, _), out in zip(launch.like, outputs):
            tensors[name] = out
        try:
            backend.launch(self.family, launch.plan, tensors)
        except Exception as e:
            return self.failed(backend, explicit, e, args)
        return None

    @staticmethod
    def is_empty(outputs: dict[str, torch.Tensor]) -> bool:
        for t in outputs.values():
            if t.numel():
                return False
        return True

    def plan_for(self, inputs: dict[str, Any], outputs: dict[str, torch.Tensor]) -> LaunchPlan | None:
        """The plan, or None when there is nothing to launch (every output is empty, or the grid is)."""
        if outputs and self.is_empty(outputs):
            return None
        metas = {k: TensorMeta.of(v) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
        plan = self.family.plan(**metas)
        return None if plan.is_empty() else plan  # Metal rejects empty dispatches

    def launch(self, backend, launch: Launch, args: tuple):
        inputs = dict(zip(self.names, args))
        write_back = []  # (original, contiguous copy) of mutated inputs that were not contiguous
        for i in launch.copies:
            name = self.names[i]
            copy = inputs[name] = args[i].contiguous()
            if name in self.mutated:
                write_back.append((args[i], copy))
        for i, name in self.aligned:
            if args[i] is not None and inputs[name].data_ptr() % 16:
                inputs[name] = inputs[name].clone()  # contiguous already: a fresh, aligned allocation
        outputs = {}
        if poison_outputs:
            outputs = allocate_outputs(self.family, inputs, launch.device)
        elif launch.like is not None:
            for name, source in launch.like:
                outputs[name] = torch.empty_like(inputs[self.names[source]])  # about half of torch.empty's cost
        else:
            for name, shape, dtype in launch.outputs:
                outputs[name] = torch.empty(shape, dtype=dtype, device=launch.device)
        plan = launch.plan
        if plan is _UNPLANNED:  # computed here, inside run's fallback, as the first launch's plan always was
            plan = launch.plan = self.plan_for(inputs, outputs)
            launch.simple = (plan is not None and not plan.scratch and not launch.copies and not self.aligned
                             and bool(launch.like))  # an op with no outputs returns None: the long way
        if plan is not None:
            inputs.update(outputs)  # plans name their buffers: inputs, outputs and scratch by name
            if plan.scratch:
                inputs.update(allocate_scratch(plan, launch.device, poison_outputs))
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
    for given in range(runner.arity):
        rest = runner.names[given:]
        if all(name in runner.defaults for name in rest):
            runner.tails[given] = tuple(runner.defaults[name] for name in rest)
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


# Whether the dispatcher, below autograd, reaches the op's own CPU/MPS kernel next (no dispatch mode, tensor
# subclass or functionalization in between), per dispatch key set (by its raw bits: DispatchKeySet's methods cost
# microseconds through pybind, its raw_repr a third of one).
_KERNEL_KEYS = (torch._C.DispatchKey.CPU, torch._C.DispatchKey.MPS)
_kernel_next: dict[int, bool] = {}


def _reaches_kernel(keyset) -> bool:
    raw = keyset.raw_repr()
    found = _kernel_next.get(raw)
    if found is None:
        below = keyset & torch._C._after_autograd_keyset
        found = _kernel_next[raw] = any(below.highestPriorityTypeId() == k for k in _KERNEL_KEYS)
    return found


def autograd_kernel(family: KernelFamily, setup_context, backward):
    """The op's Autograd kernel: torch.library's (an autograd.Function around a redispatch), except when autograd
    has nothing to record and the next key is the op's CPU/MPS kernel. Then it runs the call itself, skipping the
    redispatch's second trip through the dispatcher into Python (about as costly as the op's own host work).
    Nothing is lost by not excluding autograd below: no input requires grad, or grad mode is off."""
    qualified = op(family.name).default
    info = torch._library.autograd.Info(backward, setup_context)
    recording = torch._library.autograd.make_autograd_impl(qualified, info)
    runner = RUNNERS[family.name]
    lookup, run, arity = runner.lookup, runner.run, runner.arity
    is_grad_enabled = torch.is_grad_enabled

    def kernel(keyset, *args, **kwargs):
        if _reaches_kernel(keyset):
            if kwargs or len(args) != arity:
                args, kwargs = runner.fill_defaults(args, kwargs), {}
            launch = lookup(args)  # checks the inputs on a first call, as the kernel below would
            if not (launch.grad and is_grad_enabled()):
                return run(launch, args)
        return recording(keyset, *args, **kwargs)

    return kernel


def register_backward(family: KernelFamily) -> bool:
    """Registers the reference's backward for an op that returns new tensors (True). An op writing its inputs in
    place (kv_cache_append) gets none: it is a cache update, not a differentiable function."""
    if family.mutates or not family.outputs:
        return False
    setup_context, backward = reference_backward(family)
    if hasattr(torch._library, "autograd") and hasattr(torch._library.autograd, "make_autograd_impl"):
        kernel = AUTOGRAD_KERNELS[family.name] = autograd_kernel(family, setup_context, backward)
        _LIBRARY.impl(family.name, kernel, "Autograd", with_keyset=True)
    else:  # a torch without the private pieces: the public registration, one dispatcher trip more per call
        torch.library.register_autograd(family.qualified_name, backward, setup_context=setup_context, lib=_LIBRARY)
    RUNNERS[family.name].differentiable = True
    return True


# op -> its Python Autograd kernel, which the C++ host path's autograd kernels call when autograd records.
AUTOGRAD_KERNELS: dict[str, Any] = {}
HAS_BACKWARD = {_family.name for _family in FAMILIES if register_backward(_family)}
