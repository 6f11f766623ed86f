"""Run a kernel family's launch plans on an NVIDIA GPU: compile the translation with NVRTC through CuPy (one module
per .metal file and function-constant specialisation, cached), bind PyTorch CUDA tensors, launch.

Launches go to CuPy's current stream, which by default is the legacy default stream, the one PyTorch's default
stream is too: kernel launches, PyTorch ops and CUDA events stay in order without extra synchronisation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

import torch

from .. import registry
from ..kernels.spec import KernelFamily, LaunchPlan, TensorMeta, allocate_scratch
from .launch import CudaLaunch, plan_launch
from .source import cuda_source, nvrtc_options


class Unsupported(Exception):
    """The family's constraints send these inputs to the reference: nothing to launch."""


def cupy():
    import cupy as cp  # imported late: the package must import on machines without CUDA

    return cp


@lru_cache(maxsize=None)
def compiled_module(source: str, constants: tuple):
    cp = cupy()
    text = cuda_source(source, constants).text
    return cp.RawModule(code=text, options=nvrtc_options(), backend="nvrtc")


def constants_key(plan: LaunchPlan) -> tuple:
    return tuple(sorted(plan.constants.items()))


@dataclass
class PreparedCall:
    """One op call with its tensors bound: `launch()` re-runs exactly the kernel launches (for timing)."""

    family: KernelFamily
    plan: LaunchPlan | None  # None: nothing to launch (empty outputs or an empty grid)
    inputs: dict[str, Any]
    outputs: dict[str, torch.Tensor]
    launch: Callable[[], None]
    # The plan's scratch tensors: the launcher holds their raw pointers, so the call keeps them alive.
    scratch: dict[str, torch.Tensor] = field(default_factory=dict)

    def results(self) -> tuple[torch.Tensor, ...]:
        """The op's outputs, then the inputs it mutates (schema order), as the tests compare them."""
        return tuple(self.outputs.values()) + tuple(self.inputs[m] for m in self.family.mutates)


def launcher(source: str, plan: LaunchPlan, tensors: dict[str, Any]) -> Callable[[], None]:
    """A function that launches every dispatch of `plan` (all its regions), in order, with the bound tensors.

    The dispatches go to one stream one after the other, so each sees every write of the ones before it (CUDA
    stream order), as consecutive dispatches on one Metal encoder do."""
    cupy()  # a clear error here when CuPy is missing, before any compiling
    np = __import__("numpy")
    compiled = cuda_source(source, constants_key(plan))
    module = compiled_module(source, constants_key(plan))
    pointers = {k: v.data_ptr() for k, v in tensors.items() if isinstance(v, torch.Tensor)}
    calls = []
    for dispatch in plan.dispatches:
        entry = compiled.entries.get(dispatch.kernel)
        if entry is None:
            raise KeyError(f"{source} has no kernel '{dispatch.kernel}'")
        launch: CudaLaunch = plan_launch(entry, dispatch, pointers)
        function = module.get_function(entry.symbol)
        for region in launch.regions:
            words, small = launch.arguments(region)
            args = tuple(np.uint64(w) for w in words) + tuple(np.uint32(v) for v in small)
            calls.append((function, region.blocks, region.block, args, launch.shared_bytes))

    def run() -> None:
        for function, blocks, block, args, shared in calls:
            function(blocks, block, args, shared_mem=shared)

    return run


def prepare(family: KernelFamily, args: tuple, poison: bool = True) -> PreparedCall:
    """Checks, allocation and plan exactly as the op does (registry.OpRunner), with CUDA tensors."""
    runner = registry.RUNNERS[family.name]
    args = runner.fill_defaults(tuple(args), {})
    inputs = dict(zip(runner.names, args))
    registry.check_inputs(family, inputs)
    reason = registry.unsupported_reason(family, inputs)
    if reason:
        raise Unsupported(reason)
    for k in runner.tensor_names:
        v = inputs[k]
        if v is not None and not v.is_contiguous():
            if k in family.mutates:
                raise ValueError(f"{family.name}: mutated input '{k}' must be contiguous here")
            inputs[k] = v.contiguous()
    device = next(v.device for v in inputs.values() if isinstance(v, torch.Tensor))
    saved = registry.poison_outputs
    registry.poison_outputs = poison
    try:
        outputs = registry.allocate_outputs(family, inputs, device, inputs_contiguous=False)
    finally:
        registry.poison_outputs = saved
    plan = None
    if not (outputs and all(t.numel() == 0 for t in outputs.values())):
        metas = {k: TensorMeta.of(v) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
        plan = family.plan(**metas)
        if plan.is_empty():
            plan = None
    launch, scratch = (lambda: None), {}
    if plan is not None:
        scratch = allocate_scratch(plan, device, poison)
        launch = launcher(family.source, plan, {**inputs, **outputs, **scratch})
    return PreparedCall(family, plan, inputs, outputs, launch, scratch)


@lru_cache(maxsize=None)
def _text_module(text: str):
    return cupy().RawModule(code=text, options=nvrtc_options(), backend="nvrtc")


def run_source(source: str, plan: LaunchPlan, tensors: dict[str, Any]) -> None:
    """Translates MSL held in a string and launches `plan` on `tensors` (the lane's sanitizer controls)."""
    np = __import__("numpy")
    from .. import msl
    from ..msl.transform import Specialization
    from .translate import to_cuda

    unit = msl.read_source(source, "control.metal")
    compiled = to_cuda(unit.text, unit.program, Specialization.of(dict(plan.constants)))
    pointers = {k: v.data_ptr() for k, v in tensors.items()}
    for dispatch in plan.dispatches:
        entry = compiled.entries[dispatch.kernel]
        launch = plan_launch(entry, dispatch, pointers)
        function = _text_module(compiled.text).get_function(entry.symbol)
        for region in launch.regions:
            words, small = launch.arguments(region)
            args = tuple(np.uint64(w) for w in words) + tuple(np.uint32(v) for v in small)
            function(region.blocks, region.block, args, shared_mem=launch.shared_bytes)


def run(family: KernelFamily, args: tuple, poison: bool = True) -> tuple[torch.Tensor, ...]:
    call = prepare(family, args, poison)
    call.launch()
    return call.results()
