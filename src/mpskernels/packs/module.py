"""Running a kernel pack: bind a module's inputs, parameters and attributes to the declaration, allocate the
outputs, evaluate the launch formulas and dispatch through the same backends as the library's own kernels."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .. import registry
from ..kernels.spec import DTYPE_NAMES, LaunchPlan, Scalar
from ..runtime import choose_backend
from .declaration import ScalarArg
from .formula import TensorInfo, evaluate
from .pack import KernelPack

log = logging.getLogger("mpskernels")
_NAMES_OF_DTYPES = {name: dtype for dtype, name in DTYPE_NAMES.items()} | {
    "int32": torch.int32, "int64": torch.int64, "int16": torch.int16, "int8": torch.int8, "uint8": torch.uint8,
    "bool": torch.bool}
_DTYPE_NAMES = {dtype: name for name, dtype in _NAMES_OF_DTYPES.items()}


@dataclass(frozen=True)
class _PackSource:
    """What a backend needs to find a kernel's source: a path (absolute, so metal_dir() / path is the path)."""

    source: str


class PackCallError(ValueError):
    pass


class PackModule(nn.Module):
    """A module that runs `pack` with the parameters and attributes of `reference`.

    strict=True (verification): the pack's kernels or an error, and outputs that start as NaN so a kernel that
    skips elements cannot pass. strict=False (optimize()): a call the pack does not
    cover — other dtypes, no kernel backend for the device, a launch error under automatic backend choice — runs
    the reference module's own forward instead, logged once per reason.
    """

    def __init__(self, pack: KernelPack, reference: nn.Module, strict: bool = True):
        super().__init__()
        self.pack = pack
        self.reference = reference  # a submodule: its parameters are the ones the kernels read
        self.strict = strict
        self._source = _PackSource(str(pack.source_path))
        self._logged: set[str] = set()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        result = self.run(args, kwargs)
        if result is NotImplemented:
            return self.reference(*args, **kwargs)
        return result

    def run(self, args: tuple, kwargs: dict) -> Any:
        """The pack's result, or NotImplemented where it does not apply (non-strict only)."""
        decl = self.pack.declaration
        if kwargs or len(args) != len(decl.inputs):
            return self._decline(f"forward takes {len(decl.inputs)} positional input(s) "
                                 f"({', '.join(decl.inputs)}), got {len(args)} and {len(kwargs)} keyword(s)")
        tensors: dict[str, Any] = {}
        for name, value in zip(decl.inputs, args):
            if not isinstance(value, torch.Tensor):
                return self._decline(f"input {name} is a {type(value).__name__}, not a tensor")
            tensors[name] = value.contiguous()
        first = tensors[decl.inputs[0]]
        dtype_name = DTYPE_NAMES.get(first.dtype)
        if dtype_name not in decl.dtypes:
            return self._decline(f"dtype {first.dtype} is not among the pack's dtypes ({', '.join(decl.dtypes)})")
        backend, forced = choose_backend(first.device)
        if backend is None:
            return self._decline(f"no kernel backend runs on {first.device.type} here")
        state = self.reference.state_dict(keep_vars=True)
        for name in decl.parameters:
            if name not in state:
                raise PackCallError(f"kernel pack '{self.pack.name}': the module has no parameter or buffer {name!r}")
            tensors[name] = state[name].detach().contiguous()
        names = self._formula_names(tensors)
        outputs = self._allocate(names, first.device)
        tensors.update(outputs)
        names.update({n: _info(t) for n, t in outputs.items()})
        try:
            for launch in decl.launches:
                plan = self._plan(launch, names, dtype_name)
                backend.launch(self._source, plan, tensors)
        except Exception as e:
            if self.strict or forced:
                raise
            return self._decline(f"the kernel failed ({type(e).__name__}: {e})")
        returned = [outputs[n] for n in decl.returns]
        return returned[0] if len(returned) == 1 else tuple(returned)

    def _formula_names(self, tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
        names: dict[str, Any] = {n.replace(".", "_"): _info(t) for n, t in tensors.items()}
        for attribute in self.pack.declaration.attributes:
            value = getattr(self.reference, attribute, None)
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                value = value.item()
            if not isinstance(value, (bool, int, float)):
                raise PackCallError(f"kernel pack '{self.pack.name}': attribute {attribute!r} of the module is "
                                    f"{type(value).__name__}, not a number")
            names[attribute] = value
        return names

    def _allocate(self, names: dict[str, Any], device: torch.device) -> dict[str, torch.Tensor]:
        outputs = {}
        for name, spec in self.pack.declaration.outputs.items():
            shape = evaluate(spec.shape, names)
            dtype_name = evaluate(spec.dtype, names)
            if isinstance(shape, int):
                shape = (shape,)
            if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
                raise PackCallError(f"kernel pack '{self.pack.name}': output {name} has shape {shape!r}")
            dtype = _NAMES_OF_DTYPES.get(dtype_name)
            if dtype is None:
                raise PackCallError(f"kernel pack '{self.pack.name}': output {name} has unknown dtype {dtype_name!r}")
            if (self.strict or registry.poison_outputs) and dtype.is_floating_point:  # verifying: start as NaN
                outputs[name] = torch.full(shape, float("nan"), dtype=dtype, device=device)
            else:
                outputs[name] = torch.empty(shape, dtype=dtype, device=device)
        return outputs

    def _plan(self, launch, names: dict[str, Any], dtype_name: str) -> LaunchPlan:
        buffers = []
        for b in launch.buffers:
            if isinstance(b, ScalarArg):
                buffers.append(Scalar(evaluate(b.value, names), b.msl_type))
            else:
                buffers.append(b)
        return LaunchPlan(
            kernel=launch.kernel.replace("{dtype}", dtype_name),
            buffers=tuple(buffers),
            threads=_triple([evaluate(t, names) for t in launch.threads]),
            group_size=_triple([evaluate(t, names) for t in launch.group_size]),
            constants={k: evaluate(v, names) for k, v in launch.constants.items()},
            threadgroup_memory={k: evaluate(v, names) for k, v in launch.threadgroup_memory.items()},
        )

    def _decline(self, reason: str) -> Any:
        if self.strict:
            raise PackCallError(f"kernel pack '{self.pack.name}': {reason}")
        if reason not in self._logged:
            self._logged.add(reason)
            log.info("kernel pack '%s': running the original module: %s", self.pack.name, reason)
        return NotImplemented


def _info(t: torch.Tensor) -> TensorInfo:
    return TensorInfo(tuple(t.shape), _DTYPE_NAMES.get(t.dtype, str(t.dtype)))


def _triple(values: list[Any]) -> tuple[int, int, int]:
    values = [int(v) for v in values]
    return tuple(values + [1] * (3 - len(values)))  # type: ignore[return-value]
