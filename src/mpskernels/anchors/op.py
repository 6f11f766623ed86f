"""An anchor kernel as an op: the anchor's host logic (grid, threadgroup size, strides, parameters, the choice
between its kernel variants) in front of its unmodified Metal kernel, on either backend.

`prepare` does everything but the launch, so the NVIDIA lane can time the launch alone; calling the op prepares,
launches and returns the output, which is what the tests compare with PyTorch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch


@dataclass
class Prepared:
    """One prepared call: `launch()` enqueues the anchor's kernel(s) (one or more dispatches, in order) and writes
    `out`; it can be called again to re-run (the lane times it); inputs and outputs stay allocated."""

    launch: Callable[[], None]
    out: Any  # a tensor, or a tuple of tensors
    kernels: tuple[str, ...] = field(default=())  # host names launched, in order (the report names them)


@dataclass(frozen=True)
class AnchorOp:
    """`name` is the anchor's own kernel name ("mlx.sdpa_vector_2pass"); `family` is ours it competes with
    (mpskernels.kernels.FAMILIES key); `prepare_fn(backend, *inputs, **params) -> Prepared`."""

    name: str
    anchor: str  # "mlx" or "torch"
    family: str
    dtypes: tuple[torch.dtype, ...]
    prepare_fn: Callable[..., Prepared]
    doc: str = ""

    def prepare(self, *inputs: Any, backend: str = "emulator", **params: Any) -> Prepared:
        for t in inputs:
            if isinstance(t, torch.Tensor) and t.is_floating_point() and t.dtype not in self.dtypes:
                raise TypeError(f"anchor {self.name}: dtype {t.dtype} is not one it is instantiated for "
                                f"({', '.join(str(d) for d in self.dtypes)})")
        return self.prepare_fn(backend, *inputs, **params)

    def __call__(self, *inputs: Any, backend: str = "emulator", **params: Any) -> Any:
        prepared = self.prepare(*inputs, backend=backend, **params)
        prepared.launch()
        return prepared.out


REGISTRY: dict[str, AnchorOp] = {}


def register(op: AnchorOp) -> AnchorOp:
    if op.name in REGISTRY:
        raise ValueError(f"anchor op {op.name!r} registered twice")
    REGISTRY[op.name] = op
    return op


def for_family(family: str) -> list[AnchorOp]:
    """Every registered anchor op that does what our `family` does."""
    return [op for op in REGISTRY.values() if op.family == family]
