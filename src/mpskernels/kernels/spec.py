"""The declaration format of a kernel family: the single source of truth for one op.

A `KernelFamily` says which `.metal` file implements the op, the op's schema, its plain-PyTorch reference (the
fallback and the test oracle), the dtypes and shape constraints it supports, how outputs are allocated, and a pure
function from shapes and dtype to a `LaunchPlan`. Op registration, backend launches, tests and the docs table are
derived from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch

# Host names end in the dtype's name: rms_norm_float16. The .metal instantiation macros use the same names.
DTYPE_NAMES: dict[torch.dtype, str] = {
    torch.float32: "float32",
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
}
FLOAT_DTYPES = tuple(DTYPE_NAMES)
MSL_SCALAR_TYPES = ("float", "half", "bfloat", "int", "uint", "long", "ulong", "bool", "short", "ushort")


def no_validation(inputs: Mapping[str, Any]) -> None:
    """The default `validate`: the op accepts any shapes its dtypes and constraints allow."""


@dataclass(frozen=True)
class Scalar:
    """A scalar argument bound as `constant T&`, with its MSL type spelled out so every backend packs it alike."""

    value: bool | int | float
    msl_type: str

    def __post_init__(self) -> None:
        if self.msl_type not in MSL_SCALAR_TYPES:
            raise ValueError(f"unsupported scalar type {self.msl_type!r}; use one of {MSL_SCALAR_TYPES}")


@dataclass(frozen=True)
class Dispatch:
    """One kernel dispatch: `buffers[i]` binds `[[buffer(i)]]` (a tensor's name, a Scalar, or None for a slot the
    kernel does not read in this specialisation: a buffer switched off by a function constant)."""

    kernel: str
    buffers: tuple[str | Scalar | None, ...]
    threads: tuple[int, int, int]
    group_size: tuple[int, int, int]
    threadgroup_memory: Mapping[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Scratch:
    """A temporary buffer a plan's dispatches pass between them (e.g. per-block partial results): allocated by the
    runtime on the call's device, contiguous, uninitialised (written before it is read), bound by `name`."""

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype


@dataclass(frozen=True)
class LaunchPlan:
    """Everything a backend needs to encode one op call, and nothing about how.

    The plan's own fields are its first dispatch (`buffers[i]` binds `[[buffer(i)]]`: the name of an input, output
    or scratch tensor, a Scalar, or None for a slot switched off by a function constant). `then` lists further
    dispatches of the same .metal file and function constants, run in order on the same stream, each seeing every
    write of the ones before it; `scratch` declares the temporaries they exchange. Most families have one dispatch
    and no scratch.
    """

    kernel: str
    buffers: tuple[str | Scalar | None, ...]
    threads: tuple[int, int, int]
    group_size: tuple[int, int, int]
    constants: Mapping[str, bool | int | float] = field(default_factory=dict)
    threadgroup_memory: Mapping[int, int] = field(default_factory=dict)
    then: tuple[Dispatch, ...] = ()
    scratch: tuple[Scratch, ...] = ()

    def __post_init__(self) -> None:
        names = [s.name for s in self.scratch]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.kernel}: scratch buffer names repeat: {names}")

    @property
    def dispatches(self) -> tuple[Dispatch, ...]:
        """Every dispatch, in launch order."""
        first = Dispatch(self.kernel, self.buffers, self.threads, self.group_size, self.threadgroup_memory)
        return (first, *self.then)

    def is_empty(self) -> bool:
        """Whether some dispatch has an empty grid (Metal rejects those): then nothing is launched."""
        return any(0 in d.threads for d in self.dispatches)


def allocate_scratch(plan: LaunchPlan, device: torch.device, poison: bool = False) -> dict[str, torch.Tensor]:
    """The plan's scratch tensors, by name, on `device`; `poison` fills them with NaN (the tests do), so a dispatch
    that reads scratch nobody wrote cannot pass."""
    if poison:
        return {s.name: torch.full(s.shape, float("nan"), dtype=s.dtype, device=device) for s in plan.scratch}
    return {s.name: torch.empty(s.shape, dtype=s.dtype, device=device) for s in plan.scratch}


@dataclass(frozen=True)
class TensorMeta:
    """What a plan may look at: shapes and dtype, never data (plans must be pure and run under tracing)."""

    shape: tuple[int, ...]
    dtype: torch.dtype

    @classmethod
    def of(cls, t: torch.Tensor) -> "TensorMeta":
        return cls(tuple(t.shape), t.dtype)

    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True)
class Provenance:
    """Who wrote a kernel and how it was verified (shown in the docs table and kernel packs)."""

    author: str
    verified: str


@dataclass(frozen=True)
class KernelFamily:
    name: str  # op name: torch.ops.mpskernels.<name>
    source: str  # file in metal/
    schema: str  # torch.library schema without the name, e.g. "(Tensor x, Tensor? weight, float eps) -> Tensor"
    reference: Callable[..., Any]  # plain PyTorch, same signature as the op
    dtypes: tuple[torch.dtype, ...]
    # Output allocation from the inputs: output name -> function (inputs by name) -> (shape, dtype).
    outputs: Mapping[str, Callable[[Mapping[str, Any]], tuple[tuple[int, ...], torch.dtype]]]
    plan: Callable[..., LaunchPlan]  # (inputs by name as TensorMeta / scalars) -> LaunchPlan
    # Raises ValueError for inputs the op itself rejects (wrong shapes): a usage error, never a fallback.
    validate: Callable[[Mapping[str, Any]], None] = no_validation
    # True when `validate` reads only what the op's launch cache keys on (shapes, strides, dtypes, devices,
    # requires_grad and scalar arguments): its verdict is then cached with the plan for those inputs. Left False
    # (safe for any validate) it runs on every call, as it must for one that reads values or memory (rope's
    # position ids, kv_cache_append's aliasing checks).
    validate_is_static: bool = False
    # Checks that read values or memory (raising ValueError like validate): run on every call, after validate,
    # cached or not. With them here, validate itself can be static.
    check_values: Callable[[Mapping[str, Any]], None] | None = None
    # Whether check_values has anything to read for inputs like these, answered from what the launch cache keys on
    # (rope: only CPU position ids are read): False spares repeated calls the check. None: it always has.
    values_to_check: Callable[[Mapping[str, Any]], bool] | None = None
    # Reasons the kernel cannot take these inputs (None when it can): unsupported cases fall back to the reference.
    # Like `plan`, a constraint may look at shapes, dtypes, devices and scalars only: its answer is cached.
    constraints: Sequence[Callable[[Mapping[str, Any]], str | None]] = ()
    description: str = ""
    fusions: str = ""  # what the kernel fuses, for the docs table
    provenance: Provenance = Provenance("mpskernels maintainers", "emulator against float64 reference")
    # Inputs the op writes in place (marked `Tensor(a!)` in the schema). A non-contiguous one is computed in a
    # contiguous copy and copied back.
    mutates: tuple[str, ...] = ()
    # Tensor arguments that carry the op's dtype (one of `dtypes`, all alike); None: every tensor argument.
    # Others (indices, positions) are checked by `validate`.
    dtype_args: tuple[str, ...] | None = None
    # Tensor inputs the kernel reads with 16-byte vector loads and no alignment test: one whose data pointer is not
    # 16-byte aligned (a view with a storage offset) is copied to fresh, aligned memory before the launch (Metal
    # leaves misaligned vector loads undefined; the emulator faults on them).
    aligned_inputs: tuple[str, ...] = ()
    # Small argument tuples for a dtype: every one runs on the emulator in the tests, and through opcheck.
    examples: Callable[[torch.dtype], Sequence[tuple]] = lambda dtype: ()
    # Argument tuples that hit a constraint: the tests check they run the reference and launch nothing.
    fallback_examples: Callable[[torch.dtype], Sequence[tuple]] = lambda dtype: ()

    @property
    def qualified_name(self) -> str:
        return f"mpskernels::{self.name}"


# ---- helpers shared by declarations ----


@dataclass(frozen=True)
class Like:
    """Output allocation: same shape and dtype as input `name` (which the op has made contiguous)."""

    name: str

    def __call__(self, inputs: Mapping[str, Any]) -> tuple[tuple[int, ...], torch.dtype]:
        t = inputs[self.name]
        return tuple(t.shape), t.dtype

    def empty(self, inputs: Mapping[str, Any]) -> torch.Tensor:
        return torch.empty_like(inputs[self.name])  # the input is contiguous by now, so the output is too


def like(name: str) -> Like:
    return Like(name)


def fits_uint32(name: str):
    """Constraint: the kernel indexes `name` with 32-bit integers."""

    def check(inputs: Mapping[str, Any]) -> str | None:
        n = inputs[name].numel()
        return f"{name} has {n} elements, more than 32-bit indexing covers" if n >= 2**32 else None

    check.__doc__ = f"{name} has 2^32 elements or more"
    return check
