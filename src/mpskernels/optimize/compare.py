"""How a swapped module's output is compared with the original's: the project's tolerance for the dtype, doubled
(both outputs are rounded), widened by the config's scale, with the tolerance printed next to the errors."""

from __future__ import annotations

from typing import Any

import torch

from ..tolerances import TOLERANCES, Tolerance, compare

EMPTY = "not checked: empty input"


def tolerance(dtype: torch.dtype, scale: float) -> Tolerance:
    # Module against module: both outputs are rounded to the dtype, so allow twice the single-rounding tolerance.
    tol = TOLERANCES.get(dtype, TOLERANCES[torch.float32])
    return Tolerance(tol.rtol * 2 * scale, tol.atol * 2 * scale)


def agree(got: Any, want: Any, scale: float) -> tuple[bool, str, float | None]:
    """(agrees, what the comparison found, max abs error). An empty output agrees but says it was not checked."""
    if not isinstance(got, torch.Tensor) or not isinstance(want, torch.Tensor):
        return False, "the module does not return a single tensor", None
    if got.shape != want.shape or got.dtype != want.dtype:
        return False, f"output {tuple(got.shape)} {got.dtype} vs original {tuple(want.shape)} {want.dtype}", None
    if want.numel() == 0:
        return True, EMPTY, None
    # The relative tolerance also applies to the output's scale (its rms), as in the verifier: a module ending in a
    # linear layer cancels large terms into near-zero outputs whose error reflects the terms' size, not their own
    # (LLaMA's MLP on the x100 probe failed by one rounding of that size). A wrong kernel misses by far more.
    tol = tolerance(want.dtype, scale)
    slack = tol.rtol * rms(want)
    result = compare(got, want, tolerance=tol, slack=torch.full((), slack))
    applied = f"tolerance atol {tol.atol:.2g} + rtol {tol.rtol:.2g} x (|expected| + rms {slack / tol.rtol:.3g})"
    return result.ok, f"{result}; {applied}", result.max_abs


def rms(t: torch.Tensor) -> float:
    finite = t.detach().to(torch.float64)[t.isfinite()]
    return float(finite.pow(2).mean().sqrt()) if finite.numel() else 0.0


def agree_outputs(got: Any, want: Any, scale: float) -> tuple[bool, str, float | None]:
    """`agree` over every floating-point tensor of two module outputs: a rotary module returns (q, k), and k must
    be right too. Outputs whose tensors do not pair up (nn.MultiheadAttention's (output, None) against weights)
    compare their first tensor. The first disagreement, else the largest error, is what is reported."""
    got_tensors, want_tensors = tensors_in(got), tensors_in(want)
    if len(got_tensors) != len(want_tensors) or len(got_tensors) < 2:
        return agree(first_tensor(got), first_tensor(want), scale)
    results = [agree(g, w, scale) for g, w in zip(got_tensors, want_tensors)]
    return next((r for r in results if not r[0]), None) or max(results, key=lambda r: r[2] or 0.0)


def first_tensor(value: Any) -> Any:
    """Modules like nn.MultiheadAttention return (output, weights): compare the output."""
    if isinstance(value, tuple) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    return value


def tensors_in(value: Any) -> list[torch.Tensor]:
    """The floating-point tensors of a model output (a tensor, tuple, list, dict or ModelOutput), in order."""
    if isinstance(value, torch.Tensor):
        return [value] if value.is_floating_point() else []
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in tensors_in(v)]
    return []
