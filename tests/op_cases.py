"""Helpers shared by the tests that are generated from kernel declarations."""

import torch

from mpskernels import registry
from mpskernels.runtime import use_backend


def clone_args(args, dtype=None):
    return tuple(
        (a.to(dtype) if dtype is not None and a.is_floating_point() else a.clone()) if isinstance(a, torch.Tensor)
        else a
        for a in args
    )


def results(family, args, out):
    """What an op call produced: its outputs, then the inputs it mutated (in schema order)."""
    outs = () if out is None else out if isinstance(out, tuple) else (out,)
    names = registry.argument_names(family.schema)
    return outs + tuple(args[names.index(m)] for m in family.mutates)


def run_op(family, args, backend=None):
    args = clone_args(args)
    if backend is None:
        return results(family, args, registry.op(family.name)(*args))
    with use_backend(backend):
        return results(family, args, registry.op(family.name)(*args))


def run_reference(family, args, dtype=None):
    args = clone_args(args, dtype)
    return results(family, args, family.reference(*args))


def strided_copy(t: torch.Tensor, offset: int = 3) -> torch.Tensor:
    """The same values in a non-contiguous view with a storage offset."""
    if t.dim() == 0:
        return t.clone()
    storage = torch.full((offset + t.numel() * 2,), float("nan"), dtype=t.dtype) if t.is_floating_point() else \
        torch.zeros(offset + t.numel() * 2, dtype=t.dtype)
    view = storage[offset:].view(*t.shape, 2)[..., 0]
    view.copy_(t)
    return view
