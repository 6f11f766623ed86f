"""Turns kernel declarations into torch.library ops in the `mpskernels` namespace.

Each family becomes `torch.ops.mpskernels.<name>` with CPU and MPS kernels and a fake (meta) implementation.
Ops are registered the low-overhead way (`Library.define` + `Library.impl`), which costs a few microseconds per
call less than `torch.library.custom_op`: decode-sized ops are dominated by host overhead.

One call: check inputs (device, dtype, shapes) → constraints (unsupported case: reference fallback) → contiguous
inputs, allocated outputs → plan (pure, from shapes and dtype) → backend launch.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Mapping

import torch

from .kernels import FAMILIES
from .kernels.spec import KernelFamily, TensorMeta
from .runtime import BackendError, choose_backend

log = logging.getLogger("mpskernels")

NAMESPACE = "mpskernels"
_LIBRARY = torch.library.Library(NAMESPACE, "DEF")
_logged_fallbacks: set[tuple[str, str]] = set()


def argument_names(schema: str) -> list[str]:
    """Names of the arguments in a schema like "(Tensor x, Tensor? weight, float eps) -> Tensor"."""
    inner = schema[schema.index("(") + 1 : schema.index(")")]
    return [re.split(r"\s+", a.strip())[-1].split("=")[0] for a in inner.split(",") if a.strip()]


def _tensors(inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in inputs.items() if isinstance(v, torch.Tensor)}


def check_inputs(family: KernelFamily, inputs: Mapping[str, Any]) -> None:
    """Errors for inputs no kernel or reference of this op should take: mixed devices, dtypes, bad shapes."""
    op = f"mpskernels.{family.name}"
    tensors = _tensors(inputs)
    devices = {t.device for t in tensors.values()}
    if len(devices) > 1:
        listed = ", ".join(f"{k} on {v.device}" for k, v in tensors.items())
        raise ValueError(f"{op}: all tensors must be on one device, got {listed}")
    dtypes = {t.dtype for t in tensors.values()}
    supported = ", ".join(str(d).replace("torch.", "") for d in family.dtypes)
    for name, t in tensors.items():
        if t.dtype not in family.dtypes:
            raise TypeError(f"{op}: {name} has dtype {t.dtype}; supported dtypes: {supported}")
    if len(dtypes) > 1:
        listed = ", ".join(f"{k} is {v.dtype}" for k, v in tensors.items())
        raise TypeError(f"{op}: all tensors must have one dtype, got {listed}")
    try:
        family.validate(inputs)
    except ValueError as e:
        raise ValueError(f"{op}: {e}") from None


def unsupported_reason(family: KernelFamily, inputs: Mapping[str, Any]) -> str | None:
    for constraint in family.constraints:
        reason = constraint(inputs)
        if reason:
            return reason
    return None


# Tests and the verifier set this: outputs start as NaN, so a kernel that skips elements cannot pass.
poison_outputs = False


def allocate_outputs(family: KernelFamily, inputs: Mapping[str, Any], device: torch.device) -> dict[str, torch.Tensor]:
    outputs = {}
    for name, alloc in family.outputs.items():
        shape, dtype = alloc(inputs)
        if poison_outputs:
            outputs[name] = torch.full(shape, float("nan"), dtype=dtype, device=device)
        else:
            outputs[name] = torch.empty(shape, dtype=dtype, device=device)
    return outputs


def _result(outputs: dict[str, torch.Tensor]):
    values = tuple(outputs.values())
    return values[0] if len(values) == 1 else values


def _log_fallback_once(family: KernelFamily, reason: str) -> None:
    key = (family.name, reason)
    if key not in _logged_fallbacks:
        _logged_fallbacks.add(key)
        log.info("mpskernels.%s: using the PyTorch reference: %s", family.name, reason)


def run(family: KernelFamily, *args: Any):
    """The op's implementation for real tensors (CPU and MPS)."""
    inputs = dict(zip(argument_names(family.schema), args))
    check_inputs(family, inputs)
    device = next(iter(_tensors(inputs).values())).device
    reason = unsupported_reason(family, inputs)
    backend, explicit = choose_backend(device)
    if reason is not None or backend is None:
        _log_fallback_once(family, reason or f"no kernel backend for {device.type} tensors")
        return family.reference(*args)
    inputs = {k: v.contiguous() if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
    outputs = allocate_outputs(family, inputs, device)
    if all(t.numel() == 0 for t in outputs.values()):
        return _result(outputs)
    metas = {k: TensorMeta.of(v) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
    plan = family.plan(**metas)
    tensors = {k: v for k, v in {**inputs, **outputs}.items() if isinstance(v, torch.Tensor)}
    try:
        backend.launch(family, plan, tensors)
    except Exception as e:
        if explicit:
            raise BackendError(f"mpskernels.{family.name}: the {backend.name} backend failed: {e}") from e
        _log_fallback_once(family, f"the {backend.name} backend failed ({type(e).__name__}: {e})")
        return family.reference(*args)
    return _result(outputs)


def fake(family: KernelFamily, *args: Any):
    """Shapes only, for torch.compile and export: the outputs the real call would allocate."""
    inputs = dict(zip(argument_names(family.schema), args))
    device = next(iter(_tensors(inputs).values())).device
    return _result(allocate_outputs(family, inputs, device))


def register(family: KernelFamily) -> None:
    _LIBRARY.define(family.name + family.schema)
    impl = lambda *args, _f=family: run(_f, *args)  # noqa: E731
    _LIBRARY.impl(family.name, impl, "CPU")
    _LIBRARY.impl(family.name, impl, "MPS")
    torch.library.register_fake(family.qualified_name, lambda *args, _f=family: fake(_f, *args), lib=_LIBRARY)


def op(name: str):
    """The registered op `torch.ops.mpskernels.<name>`."""
    return getattr(torch.ops.mpskernels, name)


for _family in FAMILIES:
    register(_family)
