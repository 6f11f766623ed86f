"""Python entry points for every op: `mpskernels.ops.rms_norm(x, weight, eps)`.

In eager mode they call the op's implementation directly, skipping a trip through the PyTorch dispatcher (a few
microseconds per call, which matters for decode-sized ops); while torch.compile or export traces, or while autograd
records (gradients enabled and a tensor argument requires them), they call `torch.ops.mpskernels.<name>`, so graphs
hold the registered op with its fake implementation and gradients flow through its registered backward.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from .kernels import FAMILIES
from .registry import HAS_BACKWARD, RUNNERS, op

__all__ = [f.name for f in FAMILIES]


def _records_grad(args: tuple, kwargs: dict) -> bool:
    return any(isinstance(a, torch.Tensor) and a.requires_grad for a in (*args, *kwargs.values()))


def _entry_point(name: str) -> Callable[..., Any]:
    runner = RUNNERS[name]
    registered = op(name)
    is_compiling, is_grad_enabled = torch.compiler.is_compiling, torch.is_grad_enabled
    differentiable = name in HAS_BACKWARD

    def call(*args: Any, **kwargs: Any):
        if is_compiling() or (differentiable and is_grad_enabled() and _records_grad(args, kwargs)):
            return registered(*args, **kwargs)
        return runner(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"mpskernels.{name}{runner.family.schema}: {runner.family.description}"
    return call


for _family in FAMILIES:
    globals()[_family.name] = _entry_point(_family.name)
