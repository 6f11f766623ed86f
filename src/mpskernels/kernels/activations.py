"""Element-wise activations."""

from __future__ import annotations

import torch

from .spec import DTYPE_NAMES, FLOAT_DTYPES, KernelFamily, LaunchPlan, Scalar, TensorMeta, fits_uint32, like

N_READS = 4  # elements per thread; matches unary<T, Op, 4> in metal/activations.metal
GROUP = 256


def silu_reference(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.silu(x.float()).to(x.dtype)


def unary_plan(op: str):
    def plan(x: TensorMeta) -> LaunchPlan:
        n = x.numel()
        return LaunchPlan(
            kernel=f"{op}_{DTYPE_NAMES[x.dtype]}",
            buffers=("x", "out", Scalar(n, "uint")),
            threads=(-(-n // N_READS), 1, 1),
            group_size=(GROUP, 1, 1),
        )

    return plan


def unary_examples(dtype: torch.dtype):
    gen = torch.Generator().manual_seed(0)
    return [(torch.randn(37, generator=gen).to(dtype),), (torch.randn(2, 3, 5, generator=gen).to(dtype),)]


SILU = KernelFamily(
    name="silu",
    source="activations.metal",
    schema="(Tensor x) -> Tensor",
    reference=silu_reference,
    dtypes=FLOAT_DTYPES,
    outputs={"out": like("x")},
    plan=unary_plan("silu"),
    constraints=(fits_uint32("x"),),
    description="SiLU (x * sigmoid(x))",
    fusions="sigmoid and multiply in one pass",
    examples=unary_examples,
)
FAMILIES = (SILU,)
