"""Element-wise activations (SiLU, GELU exact and tanh, Mish, HardSwish) and gated linear units (SwiGLU, GeGLU).

The gated units come in two forms: two tensors, `act(a) * b`, and one tensor whose last dimension holds both halves,
`a, b = x.chunk(2, -1); act(a) * b` (the `_split` ops), which is how fused up/gate projections lay them out.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F

from .spec import DTYPE_NAMES, FLOAT_DTYPES, KernelFamily, LaunchPlan, Scalar, TensorMeta, fits_uint32, like

CHUNK_BYTES = 16  # a thread moves one 16-byte chunk (metal/chunk_io.h): 4 floats or 8 halves / bfloats
# Tried (H100 lane, 2026-12-07, side by side in one device call): a grid of fewer than 160 threadgroups of 256 (8 x
# 11008, where torch's native ops and torch.compile take 1.4-1.6 us to our 1.6-1.9) halving its threadgroups down to
# one SIMD group so that it reaches more cores: 0.98-1.05x over the 24 small cases, geomean 1.007. Not kept: at these
# sizes the time is the launch and one round trip to memory, not the cores reached.
GROUP = 256  # threads per threadgroup
GELU_APPROXIMATIONS = ("none", "tanh")  # torch.nn.GELU's `approximate`


# ---- references: plain PyTorch, computed in float32 (float64 stays float64: the test oracle) ----


def compute(t: torch.Tensor) -> torch.Tensor:
    """The tensor in the precision a reference computes in: float32, or float64 when given float64."""
    return t if t.dtype == torch.float64 else t.float()


# PyTorch's formulas, evaluated so that their value is the one the formula gives (the contract of every backend,
# docs/kernels.md): F.gelu's vectorised CPU kernel gives NaN at +inf and inf at 3e38 (x * (1 + erf) overflows), and
# F.hardswish inf at 3e38 (x * 6 overflows). Where the formula equals x in the working precision (GELU beyond 10:
# 1 - Phi(10) ~ 8e-24; HardSwish from 3 on) the references return x itself.


def gelu(t: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    return torch.where(t > 10, t, F.gelu(t, approximate=approximate))


def hardswish(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t >= 3, t, F.hardswish(t))


def silu_reference(x: torch.Tensor) -> torch.Tensor:
    return F.silu(compute(x)).to(x.dtype)


def gelu_reference(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    return gelu(compute(x), approximate).to(x.dtype)


def mish_reference(x: torch.Tensor) -> torch.Tensor:
    return F.mish(compute(x)).to(x.dtype)


def hardswish_reference(x: torch.Tensor) -> torch.Tensor:
    return hardswish(compute(x)).to(x.dtype)


def swiglu_reference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (F.silu(compute(a)) * compute(b)).to(a.dtype)


def geglu_reference(a: torch.Tensor, b: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    return (gelu(compute(a), approximate) * compute(b)).to(a.dtype)


def swiglu_split_reference(x: torch.Tensor) -> torch.Tensor:
    a, b = compute(x).chunk(2, -1)
    return (F.silu(a) * b).to(x.dtype)


def geglu_split_reference(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    a, b = compute(x).chunk(2, -1)
    return (gelu(a, approximate) * b).to(x.dtype)


# ---- launch plans ----
# Scalar arguments with a schema default (approximate="none") reach the plan only when the caller passed them: the
# dispatcher drops trailing defaulted arguments, so every plan, validate and constraint repeats the default.


def kernel_name(op: str, approximate: str, dtype: torch.dtype, variant: str = "") -> str:
    """Host name in metal/activations.metal: <op>[_tanh][_<variant>]_<dtype>."""
    parts = [op] + (["tanh"] if approximate == "tanh" else []) + ([variant] if variant else [])
    return "_".join(parts + [DTYPE_NAMES[dtype]])


def chunk_elements(dtype: torch.dtype) -> int:
    return CHUNK_BYTES // torch.empty((), dtype=dtype).element_size()


def flat_launch(kernel: str, buffers: tuple, n: int, dtype: torch.dtype) -> LaunchPlan:
    """1-D grid, one 16-byte chunk per thread."""
    chunks = -(-n // chunk_elements(dtype))
    return LaunchPlan(kernel=kernel, buffers=buffers, threads=(chunks, 1, 1), group_size=(GROUP, 1, 1))


def row_grid(cols: int, rows: int, dtype: torch.dtype) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(threads, group_size) of a 2-D grid: x covers a row one 16-byte chunk per thread, y the rows. A threadgroup
    holds GROUP threads: as many as a row needs along x (a power of two), the rest spread over rows."""
    per_row = max(1, -(-cols // chunk_elements(dtype)))
    gx = 1
    while gx < per_row and gx < GROUP:
        gx *= 2
    return (per_row, rows, 1), (gx, GROUP // gx, 1)


def unary_plan(op: str):
    def plan(x: TensorMeta) -> LaunchPlan:
        n = x.numel()
        return flat_launch(f"{op}_{DTYPE_NAMES[x.dtype]}", ("x", "out", Scalar(n, "uint")), n, x.dtype)

    return plan


def gelu_plan(x: TensorMeta, approximate: str = "none") -> LaunchPlan:
    n = x.numel()
    return flat_launch(kernel_name("gelu", approximate, x.dtype), ("x", "out", Scalar(n, "uint")), n, x.dtype)


def gated_plan(op: str):
    def plan(a: TensorMeta, b: TensorMeta, approximate: str = "none") -> LaunchPlan:
        n = a.numel()
        return flat_launch(kernel_name(op, approximate, a.dtype), ("a", "b", "out", Scalar(n, "uint")), n,
                           a.dtype)

    return plan


def split_plan(op: str):
    def plan(x: TensorMeta, approximate: str = "none") -> LaunchPlan:
        half = x.shape[-1] // 2
        rows = x.numel() // max(1, x.shape[-1])
        threads, group = row_grid(half, rows, x.dtype)
        return LaunchPlan(
            kernel=kernel_name(op, approximate, x.dtype, "split"),
            buffers=("x", "out", Scalar(half, "uint")),
            threads=threads,
            group_size=group,
        )

    return plan


def half_last_dim(inputs: Mapping[str, Any]) -> tuple[tuple[int, ...], torch.dtype]:
    """Output allocation of the _split ops: x's shape with the last dimension halved."""
    x = inputs["x"]
    return (*x.shape[:-1], x.shape[-1] // 2), x.dtype


# ---- validation ----


def check_approximate(inputs: Mapping[str, Any]) -> None:
    approximate = inputs.get("approximate", "none")
    if approximate not in GELU_APPROXIMATIONS:
        raise ValueError(f"approximate must be 'none' or 'tanh' (as in torch.nn.GELU), got {approximate!r}")


def validate_gated(inputs: Mapping[str, Any]) -> None:
    a, b = inputs["a"], inputs["b"]
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    check_approximate(inputs)


def validate_split(inputs: Mapping[str, Any]) -> None:
    x = inputs["x"]
    if x.dim() == 0 or x.shape[-1] % 2:
        raise ValueError(f"x's last dimension must be even (it holds a, then b), got shape {tuple(x.shape)}")
    check_approximate(inputs)


# ---- examples: cross the SIMD width (31, 32, 33), a prime, size-1 dimensions, GELU down to its tail's underflow ----


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def unary_examples(dtype: torch.dtype):
    gen = _gen()
    return [
        (torch.randn(37, generator=gen).to(dtype),),
        (torch.randn(2, 3, 5, generator=gen).mul(3).to(dtype),),
        (torch.linspace(-12, 12, 97).to(dtype),),  # tails: erfc down to underflow, Mish's cut-off at 20 not reached
        (torch.randn(1, 33, 1, generator=gen).mul(4).to(dtype),),
    ]


def gelu_examples(dtype: torch.dtype):
    return [(*args, approximate) for approximate in GELU_APPROXIMATIONS for args in unary_examples(dtype)]


def mish_examples(dtype: torch.dtype):
    return unary_examples(dtype) + [(torch.linspace(-30, 30, 31).to(dtype),)]


def gated_examples(approximations=("",)):
    def examples(dtype: torch.dtype):
        gen = _gen()
        shapes = [(37,), (2, 3, 33), (1, 31), (32,)]
        out = []
        for i, shape in enumerate(shapes):
            a = torch.randn(shape, generator=gen).mul(3).to(dtype)
            b = torch.randn(shape, generator=gen).to(dtype)
            approximate = approximations[i % len(approximations)]
            out.append((a, b, approximate) if approximate else (a, b))
        return out

    return examples


def split_examples(approximations=("",)):
    def examples(dtype: torch.dtype):
        gen = _gen()
        shapes = [(3, 66), (2, 1, 62), (5, 2), (64,), (1, 3, 2 * 37), (2, 2 * 130)]  # halves 33, 31, 1, 32, 37, 130
        out = []
        for i, shape in enumerate(shapes):
            x = torch.randn(shape, generator=gen).mul(3).to(dtype)
            approximate = approximations[i % len(approximations)]
            out.append((x, approximate) if approximate else (x,))
        return out

    return examples


def unary_family(name: str, reference, description: str, fusions: str, examples=unary_examples) -> KernelFamily:
    return KernelFamily(
        name=name,
        source="activations.metal",
        schema="(Tensor x) -> Tensor",
        reference=reference,
        dtypes=FLOAT_DTYPES,
        outputs={"out": like("x")},
        plan=unary_plan(name),
        constraints=(fits_uint32("x"),),
        description=description,
        fusions=fusions,
        examples=examples,
    )


SILU = unary_family("silu", silu_reference, "SiLU (x * sigmoid(x))", "sigmoid and multiply in one pass")
MISH = unary_family("mish", mish_reference, "Mish (x * tanh(softplus(x)))",
                    "exp, softplus, tanh and multiply in one pass, without cancellation for negative x",
                    examples=mish_examples)
HARDSWISH = unary_family("hardswish", hardswish_reference, "HardSwish (x * relu6(x + 3) / 6)",
                         "add, clamp, multiply and divide in one pass")

GELU = KernelFamily(
    name="gelu",
    source="activations.metal",
    schema='(Tensor x, str approximate="none") -> Tensor',
    reference=gelu_reference,
    dtypes=FLOAT_DTYPES,
    outputs={"out": like("x")},
    plan=gelu_plan,
    validate=check_approximate,
    validate_is_static=True,
    constraints=(fits_uint32("x"),),
    description="GELU as torch.nn.GELU: exact (erf) or approximate='tanh'",
    fusions="own fp32 erf/erfc (Metal has none), scale and multiply in one pass; accurate negative tail",
    examples=gelu_examples,
)

SWIGLU = KernelFamily(
    name="swiglu",
    source="activations.metal",
    schema="(Tensor a, Tensor b) -> Tensor",
    reference=swiglu_reference,
    dtypes=FLOAT_DTYPES,
    outputs={"out": like("a")},
    plan=gated_plan("swiglu"),
    validate=validate_gated,
    validate_is_static=True,
    constraints=(fits_uint32("a"),),
    description="SwiGLU: silu(a) * b, a and b of one shape",
    fusions="SiLU and the gating multiply in one pass",
    examples=gated_examples(),
)

GEGLU = KernelFamily(
    name="geglu",
    source="activations.metal",
    schema='(Tensor a, Tensor b, str approximate="none") -> Tensor',
    reference=geglu_reference,
    dtypes=FLOAT_DTYPES,
    outputs={"out": like("a")},
    plan=gated_plan("geglu"),
    validate=validate_gated,
    validate_is_static=True,
    constraints=(fits_uint32("a"),),
    description="GeGLU: gelu(a, approximate) * b, a and b of one shape",
    fusions="GELU and the gating multiply in one pass",
    examples=gated_examples(GELU_APPROXIMATIONS),
)

SWIGLU_SPLIT = KernelFamily(
    name="swiglu_split",
    source="activations.metal",
    schema="(Tensor x) -> Tensor",
    reference=swiglu_split_reference,
    dtypes=FLOAT_DTYPES,
    outputs={"out": half_last_dim},
    plan=split_plan("swiglu"),
    validate=validate_split,
    validate_is_static=True,
    constraints=(fits_uint32("x"),),
    description="SwiGLU on one tensor: a, b = x.chunk(2, -1); silu(a) * b",
    fusions="chunk, SiLU and the gating multiply in one pass (no copies of the halves)",
    examples=split_examples(),
)

GEGLU_SPLIT = KernelFamily(
    name="geglu_split",
    source="activations.metal",
    schema='(Tensor x, str approximate="none") -> Tensor',
    reference=geglu_split_reference,
    dtypes=FLOAT_DTYPES,
    outputs={"out": half_last_dim},
    plan=split_plan("geglu"),
    validate=validate_split,
    validate_is_static=True,
    constraints=(fits_uint32("x"),),
    description="GeGLU on one tensor: a, b = x.chunk(2, -1); gelu(a, approximate) * b",
    fusions="chunk, GELU and the gating multiply in one pass (no copies of the halves)",
    examples=split_examples(GELU_APPROXIMATIONS),
)

FAMILIES = (SILU, GELU, MISH, HARDSWISH, SWIGLU, GEGLU, SWIGLU_SPLIT, GEGLU_SPLIT)
