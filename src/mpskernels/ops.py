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
from .registry import RUNNERS, op

__all__ = [f.name for f in FAMILIES]


def _entry_point(name: str) -> Callable[..., Any]:
    runner = RUNNERS[name]
    registered = op(name)
    is_compiling, is_grad_enabled = torch.compiler.is_compiling, torch.is_grad_enabled
    lookup, run, arity = runner.lookup, runner.run, runner.arity

    def call(*args: Any, **kwargs: Any):
        if is_compiling():
            return registered(*args, **kwargs)
        if kwargs or len(args) != arity:
            args = runner.fill_defaults(args, kwargs)
        launch = lookup(args)  # the cached decision for these shapes; checks the inputs on a first call
        if launch.grad and is_grad_enabled():  # a tensor requires grad and the op has a backward
            return registered(*args)
        return run(launch, args)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"mpskernels.{name}{runner.family.schema}: {runner.family.description}"
    return call


for _family in FAMILIES:
    globals()[_family.name] = _entry_point(_family.name)
