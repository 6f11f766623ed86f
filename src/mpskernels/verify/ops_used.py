"""Which PyTorch operations a module runs, recorded at the aten level while it runs.

A candidate must compute the result with its own kernels: if it runs an aten operation that the reference runs and
that is not layout or allocation work, it is calling the op it should replace (directly, through an nn.Module it
kept, through `torch.ops.aten`, or through a try/except that falls back to PyTorch).
"""

from __future__ import annotations

from typing import Any, Callable

from torch.utils._python_dispatch import TorchDispatchMode

# Work any host glue may do around a kernel: allocation, views, copies for contiguity, dtype casts, comparisons
# of metadata. Everything else is computation.
GLUE_OPS = frozenset({
    "empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "zeros", "zeros_like", "ones",
    "ones_like", "full", "full_like", "new_zeros", "new_ones", "new_full", "fill", "fill_", "zero_", "scalar_tensor",
    "view", "_unsafe_view", "reshape", "_reshape_alias", "as_strided", "expand", "permute", "transpose", "t",
    "squeeze", "unsqueeze", "flatten", "unflatten", "select", "slice", "narrow", "split", "split_with_sizes",
    "chunk", "unbind", "alias", "detach", "contiguous", "clone", "copy_", "_to_copy", "to", "lift_fresh",
    "_local_scalar_dense", "sym_size", "sym_stride", "sym_numel", "is_same_size", "resize_", "set_",
})


def _base_name(func: Any) -> str:
    name = getattr(func, "__name__", str(func))  # OpOverload: "relu.default"
    packet = getattr(func, "_overloadpacket", None)
    if packet is not None:
        name = getattr(packet, "__name__", name)
    return name.split(".")[0]


def _namespace(func: Any) -> str:
    return getattr(func, "namespace", "aten")


class _Recorder(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if _namespace(func) == "aten":
            self.ops.add(_base_name(func))
        return func(*args, **(kwargs or {}))


def record_ops(fn: Callable[[], Any]) -> tuple[Any, set[str]]:
    """Runs fn() and returns (its result, the names of the aten ops it ran). Ops run inside mpskernels' own custom
    ops are not seen: a custom op counts as one call."""
    recorder = _Recorder()
    with recorder:
        result = fn()
    return result, recorder.ops


def compute_ops(ops: set[str]) -> set[str]:
    return {op for op in ops if op not in GLUE_OPS}
