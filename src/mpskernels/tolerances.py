"""Comparison tolerances by dtype, from the project's verification rules (one table for tests, demo and bench).

A result passes when |actual - expected| <= atol + rtol * |expected| element-wise, where `expected` is the
reference computed in float64 and rounded to the output dtype's precision only by the comparison itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float


TOLERANCES: dict[torch.dtype, Tolerance] = {
    torch.float32: Tolerance(rtol=1e-5, atol=1e-6),
    torch.float16: Tolerance(rtol=1e-3, atol=1e-5),
    torch.bfloat16: Tolerance(rtol=1e-2, atol=1e-4),
}


def finite_rms(t: torch.Tensor) -> float:
    """Root mean square of t's finite elements (0 when it has none): the scale the verifier's rtol term uses."""
    finite = t[t.isfinite()]
    return float(finite.pow(2).mean().sqrt()) if finite.numel() else 0.0


def tolerance_for(dtype: torch.dtype) -> Tolerance:
    try:
        return TOLERANCES[dtype]
    except KeyError:
        raise ValueError(f"no comparison tolerance is defined for {dtype}") from None


@dataclass(frozen=True)
class Comparison:
    ok: bool
    max_abs: float
    max_rel: float
    mismatches: int
    first_bad: tuple[int, ...] | None

    def __str__(self) -> str:
        where = f", first at index {self.first_bad}" if self.first_bad is not None else ""
        return (f"{'ok' if self.ok else 'MISMATCH'}: max abs {self.max_abs:.3g}, max rel {self.max_rel:.3g}, "
                f"{self.mismatches} bad element(s){where}")


def compare(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype | None = None,
            tolerance: Tolerance | None = None, slack: torch.Tensor | None = None) -> Comparison:
    """Compares with the tolerance of `dtype` (default: actual's dtype), or an explicit one; NaN only matches NaN.
    max_rel is over the elements whose expected magnitude is at least the tolerance's atol.

    `slack` (element-wise, non-negative) widens the bound: the verifier passes the error that PyTorch's own
    computation in the op's dtype makes against the float64 expectation, so a candidate may be as far from float64
    as the reference itself is (a long fp32 reduction), on top of the dtype tolerance.
    """
    tol = tolerance or tolerance_for(dtype or actual.dtype)
    a = actual.detach().to(torch.float64).cpu()
    e = expected.detach().to(torch.float64).cpu()
    if a.shape != e.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(e.shape)}")
    diff = (a - e).abs()
    both_nan = a.isnan() & e.isnan()
    same_inf = a.isinf() & e.isinf() & (a == e)
    bound = tol.atol + tol.rtol * e.abs()
    if slack is not None:
        bound = bound + slack.detach().to(torch.float64).cpu().nan_to_num(nan=0.0, posinf=0.0)
    bad = ~(both_nan | same_inf | (diff <= bound))
    finite = ~(both_nan | same_inf)
    max_abs = float(diff[finite].max()) if finite.any() else 0.0
    # Relative error only where the expected value is at least atol: below it the absolute term governs, and a
    # ratio over a near-zero expectation (GELU's far negative tail) reads 1e14 for an error well inside the bound.
    sized = finite & (e.abs() >= tol.atol)
    max_rel = float((diff[sized] / e[sized].abs()).max()) if sized.any() else 0.0
    count = int(bad.sum())
    first = tuple(int(i) for i in bad.nonzero()[0]) if count else None
    return Comparison(count == 0, max_abs, max_rel, count, first)
